/* SQL text from clients reaches libpg_query and our tree walk: fuzz both. */
#include <stddef.h>
#include <stdint.h>

#include "sql/classify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    pc_sql_class_t *c = pc_sql_classify((const char *)data, size);
    for (size_t i = 0; i < c->n_stmts; i++) {
        const pc_sql_stmt_t *st = &c->stmts[i];
        if (st->offset + st->len > size) __builtin_trap();
    }
    pc_sql_class_unref(c);
    return 0;
}
