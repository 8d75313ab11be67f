/*
 * GraphQL documents parsed the way OPA's graphql.parse_query /
 * graphql.parse_schema do (gqlparser): the result is the AST as JSON text,
 * already pruned like OPA prunes it (no Position, no null or empty members),
 * malloc'd; errors read "Expected Name, found <EOF> in GraphQL string at
 * location 1:2".
 */
#ifndef PC_POLICY_LIB_GRAPHQL_H
#define PC_POLICY_LIB_GRAPHQL_H

#include <stdbool.h>
#include <stddef.h>

char *pc_plib_graphql_parse_query(const char *s, size_t n, char *err, size_t errlen);
char *pc_plib_graphql_parse_schema(const char *s, size_t n, char *err, size_t errlen);

/**
 * graphql.schema_is_valid: the schema parses and, merged with GraphQL's
 * built-in scalars and directives, passes gqlparser's schema rules (known and
 * well-kinded types, fields present, interfaces implemented, union members,
 * input/output type positions, directive definitions and locations).
 * On failure, err (if given) says why.
 */
bool pc_plib_graphql_schema_valid(const char *s, size_t n, char *err, size_t errlen);
/** The same for a schema given as its AST (JSON text, graphql.parse_schema's shape). */
bool pc_plib_graphql_schema_ast_valid(const char *ast, size_t n, char *err, size_t errlen);

/**
 * Validates a query AST against a schema AST (both JSON text as parse_query /
 * parse_schema produce): 1 valid, 0 invalid, -1 when the schema itself is
 * invalid. err gets the first problem ("Field \"x\" argument ... is required,
 * but it was not provided in GraphQL string at location 4:5" when the query
 * AST carries positions).
 */
int pc_plib_graphql_validate(const char *query_ast, size_t qn, const char *schema_ast, size_t sn,
                             char *err, size_t errlen);
/* Internal: parse_query that also records field positions ("Position"). */
char *pc__graphql_parse_query_ex(const char *s, size_t n, bool positions, char *err, size_t errlen);

#endif
