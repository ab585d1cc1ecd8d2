"""Build of the cairn Python package (docs/PYTHON.md).

The extension cairn._cairn is C over libcairn's public API. It links the
static, position-independent libcairn.a so that the installed package needs
no libcairn.so at run time. Where libcairn.a comes from, in order:

1. $CAIRN_BUILD_DIR/libcairn.a: a CMake build directory of this repository
   (``make build`` passes build/);
2. this checkout (../../CMakeLists.txt): configured and built with CMake into
   build/libcairn/ next to this file (only the library target; an unchanged
   checkout is not rebuilt);
3. an installed cairn found by pkg-config (``make install``).

Its dependencies' link flags come from pkg-config (the libraries of
CMakeLists.txt's CAIRN_LINK_DEPS; -lstdc++ for the simdjson shim).
CAIRN_SANITIZE=1 builds the extension with -fsanitize=address,undefined
(the library must then be a sanitizer build too; see docs/PYTHON.md).
"""
import os
import shlex
import subprocess
import sys

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEPS = ["libxxhash", "jansson", "zlib", "libzstd", "liblz4", "liblzma", "libsodium", "libcurl",
        "hdf5-serial", "simdjson"]
EXTRA_LIBS = ["-lbz2", "-lpthread", "-lm", "-lstdc++"]


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"cairn: pkg-config {' '.join(args)} failed ({e}); install the packages of "
                 "the Makefile's DEPS (make deps)")
    return shlex.split(out.stdout)


def read_version():
    header = os.path.join(ROOT, "include", "cairn.h")
    if os.path.exists(header):
        with open(header) as f:
            for line in f:
                if line.startswith("#define CAIRN_VERSION_STRING"):
                    return line.split('"')[1]
    return pkg_config("--modversion", "cairn")[0]


def build_library():
    """Builds libcairn.a of this checkout with CMake; returns its directory."""
    build = os.environ.get("CAIRN_LIB_BUILD_DIR", os.path.join(HERE, "build", "libcairn"))
    sanitize = "ON" if os.environ.get("CAIRN_SANITIZE") == "1" else "OFF"
    subprocess.run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                    "-DCAIRN_TESTS=OFF", f"-DCAIRN_SANITIZE={sanitize}"], check=True,
                   stdout=subprocess.DEVNULL)
    jobs = os.environ.get("CAIRN_JOBS", str(os.cpu_count() or 1))
    subprocess.run(["cmake", "--build", build, "--target", "cairn_static", "-j", jobs], check=True)
    # libcairn_mpi for cairn._dist, when CMake found MPI (else no such target)
    subprocess.run(["cmake", "--build", build, "--target", "cairn_mpi_static", "-j", jobs],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return build


def library_flags():
    """(include dirs, extra objects, link args) for libcairn."""
    deps = pkg_config("--libs", *DEPS) + EXTRA_LIBS
    build = os.environ.get("CAIRN_BUILD_DIR")
    if not build and os.path.exists(os.path.join(ROOT, "CMakeLists.txt")):
        build = build_library()
    if build:
        lib = os.path.join(os.path.abspath(build), "libcairn.a")
        if not os.path.exists(lib):
            sys.exit(f"cairn: {lib} does not exist; build the library first "
                     f"(cmake --build {build} --target cairn_static)")
        return [os.path.join(ROOT, "include")], [lib], deps
    cflags = pkg_config("--cflags", "cairn")
    libs = pkg_config("--static", "--libs", "cairn")
    return [f[2:] for f in cflags if f.startswith("-I")], [], libs


include_dirs, objects, link_args = library_flags()
compile_args = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter",
                "-Wno-missing-field-initializers", "-fvisibility=hidden"]
if os.environ.get("CAIRN_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    compile_args += san + ["-O1", "-g"]
    link_args = san + link_args

extension = Extension(
    "cairn._cairn",
    sources=[os.path.join("src", n) for n in ("module.c", "files.c", "writer.c", "params.c",
                                              "ckpt.c")],
    depends=[os.path.join("src", "pycairn.h")] + objects,
    include_dirs=include_dirs + ["src"],
    extra_objects=objects,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

def dist_extension():
    """cairn._dist (cairn.dist's collective save over mpi4py), when mpi4py,
    an MPI compiler wrapper and libcairn_mpi.a are all there; else None and
    cairn.dist says what is missing when used. `import cairn` never needs
    MPI."""
    if not objects:
        return None
    lib = os.path.join(os.path.dirname(objects[0]), "libcairn_mpi.a")
    try:
        import mpi4py

        mpi_cflags = shlex.split(subprocess.run(["mpicc", "--showme:compile"], check=True,
                                                capture_output=True, text=True).stdout)
        mpi_libs = shlex.split(subprocess.run(["mpicc", "--showme:link"], check=True,
                                              capture_output=True, text=True).stdout)
    except (ImportError, OSError, subprocess.CalledProcessError):
        return None
    if not os.path.exists(lib):
        return None
    return Extension(
        "cairn._dist",
        sources=[os.path.join("src", "dist.c")],
        depends=[lib] + objects,
        include_dirs=include_dirs + [mpi4py.get_include()],
        extra_objects=[lib] + objects,
        extra_compile_args=compile_args + mpi_cflags,
        extra_link_args=mpi_libs + link_args,
    )


extensions = [extension]
_dist = dist_extension()
if _dist is not None:
    extensions.append(_dist)

setup(
    name="cairn",
    version=read_version(),
    description="Safe, durable, fast save/load/checkpoint of ML models: zero-copy NumPy and "
                "PyTorch, checkpoints, skorch callbacks",
    packages=["cairn"],
    package_data={"cairn": ["*.pyi", "py.typed"]},
    ext_modules=extensions,
    python_requires=">=3.9",
    zip_safe=False,
)
