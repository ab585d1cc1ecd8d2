/* fuzz_s3_xml.c -- libFuzzer target: the strict XML scan of S3's answers
 * (io/s3_xml.h) over arbitrary bytes, walked the way io/s3.c reads a
 * ListObjectsV2 page, a ListMultipartUploads page and an error body; every
 * decoded text must be valid UTF-8 without NUL and no longer than its source. */
#include "io/s3_xml.h"
#include "common/internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void text_of(cairn__xml_span in, const char *tag)
{
    size_t pos = 0;
    cairn__xml_span inner;
    if (cairn__xml_next(in, &pos, tag, &inner) != 1)
        return;
    if (inner.p < in.p || inner.p + inner.len > in.p + in.len || pos > in.len)
        __builtin_trap();
    char *t = cairn__xml_text(inner);
    if (t && (strlen(t) > inner.len || !cairn__utf8_valid(t, strlen(t))))
        __builtin_trap();
    free(t);
    uint64_t v;
    (void)cairn__xml_u64(inner, &v);
}

static void walk(cairn__xml_span doc, const char *block, const char *const *fields)
{
    size_t pos = 0, last = 0;
    cairn__xml_span b;
    while (cairn__xml_next(doc, &pos, block, &b) == 1) {
        if (pos <= last) /* the scan always moves forward */
            __builtin_trap();
        last = pos;
        for (const char *const *f = fields; *f; f++)
            text_of(b, *f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn__xml_span doc = {(const char *)data, size};
    static const char *const contents[] = {"Key", "Size", NULL};
    static const char *const uploads[] = {"Key", "UploadId", "Initiated", NULL};
    walk(doc, "Contents", contents);
    walk(doc, "Upload", uploads);
    static const char *const top[] = {"IsTruncated", "NextContinuationToken", "NextKeyMarker",
                                      "NextUploadIdMarker", "UploadId", "Code", NULL};
    for (const char *const *t = top; *t; t++)
        text_of(doc, *t);
    return 0;
}
