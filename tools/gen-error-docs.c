/* Writes docs/error-codes.md from the error catalog (drd/core/errors.def) to stdout. */
#include <stdio.h>

int main(void)
{
    printf(
        "# drd error codes\n\n"
        "Generated from `drd/core/errors.def` by `tools/gen-error-docs` (the unit test\n"
        "`unit.error_docs` fails when this file is out of date). `drd` exits with the number.\n\n"
        "| exit | name | meaning |\n| --- | --- | --- |\n");
#define X(name, num, desc) printf("| %d | `%s` | %s |\n", num, #name, desc);
#include "drd/core/errors.def"
#undef X
    return 0;
}
