/* harness.h - a tiny test harness: cases, checks, one summary line. */
#ifndef UPV_HARNESS_H
#define UPV_HARNESS_H
#include <stdio.h>

typedef struct {
    unsigned vectors; /* vector-file items checked */
    unsigned passed, failed;
    const char *name;
    unsigned case_failures;
} harness_t;

extern harness_t H;

void case_begin(const char *name);
void case_end(void);
void check_fail(const char *file, int line, const char *what);

#define CHECK(cond) do { if (!(cond)) check_fail(__FILE__, __LINE__, #cond); } while (0)
#define CHECK_MSG(cond, what) do { if (!(cond)) check_fail(__FILE__, __LINE__, (what)); } while (0)

#endif
