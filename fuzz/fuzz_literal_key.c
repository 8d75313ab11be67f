/* The classification-cache key (numeric literals -> 0, src/decision/engine.c)
 * must never change what PostgreSQL's parser says about a statement: for any
 * input whose key differs, a single-statement query classifies the same
 * (statement type, command class, tables) from its text and from its key. */
#include "sql/classify.h"

#include <stdlib.h>
#include <string.h>

size_t pc__decision_literal_key(const char *q, size_t n, char *out, size_t cap);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024) return 0;
    char key[2048];
    size_t kn = pc__decision_literal_key((const char *)data, size, key, sizeof key);
    if (!kn) return 0;
    if (kn > sizeof key) abort();
    pc_sql_class_t *a = pc_sql_classify((const char *)data, size);
    pc_sql_class_t *b = pc_sql_classify(key, kn);
    if (a->parsed && a->n_stmts == 1 && b->parsed && b->n_stmts == 1) {
        const pc_sql_stmt_t *x = &a->stmts[0], *y = &b->stmts[0];
        if (strcmp(x->statement_type, y->statement_type) != 0) abort();
        if (strcmp(x->command_type, y->command_type) != 0) abort();
        if (x->n_tables != y->n_tables) abort();
        for (size_t i = 0; i < x->n_tables; i++)
            if (strcmp(x->tables[i], y->tables[i]) != 0) abort();
    }
    /* The engine uses a key's class only when the key parses as one statement;
     * the original must then be one statement too (or not parse at all). */
    if (b->parsed && b->n_stmts == 1 && a->parsed && a->n_stmts != 1) abort();
    pc_sql_class_unref(a);
    pc_sql_class_unref(b);
    return 0;
}
