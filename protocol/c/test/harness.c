#include "harness.h"

harness_t H;

void case_begin(const char *name)
{
    H.name = name;
    H.case_failures = 0;
}

void case_end(void)
{
    if (H.case_failures) {
        H.failed++;
        printf("FAIL %s\n", H.name);
    } else {
        H.passed++;
    }
}

void check_fail(const char *file, int line, const char *what)
{
    if (H.case_failures++ < 5u) {
        printf("  %s:%d: [%s] check failed: %s\n", file, line, H.name, what);
    }
}
