/* main.c - runs every C test; the last line is the summary `make test` is judged by. */
#include <stdio.h>

#include "harness.h"

void run_vector_tests(void);
void run_link_tests(void);
void run_board_tests(void);
void run_codec_tests(void);

int main(void)
{
    run_vector_tests();
    run_link_tests();
    run_codec_tests();
    run_board_tests();
    printf("c-reference vectors=%u passed=%u failed=%u\n", H.vectors, H.passed, H.failed);
    return H.failed ? 1 : 0;
}
