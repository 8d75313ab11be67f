/*
 * GraphQL documents parsed the way OPA's graphql.parse_query /
 * graphql.parse_schema do (gqlparser): the result is the AST as JSON text,
 * already pruned like OPA prunes it (no Position, no null or empty members),
 * malloc'd; errors read "Expected Name, found <EOF> in GraphQL string at
 * location 1:2".
 */
#ifndef PC_POLICY_LIB_GRAPHQL_H
#define PC_POLICY_LIB_GRAPHQL_H

#include <stddef.h>

char *pc_plib_graphql_parse_query(const char *s, size_t n, char *err, size_t errlen);
char *pc_plib_graphql_parse_schema(const char *s, size_t n, char *err, size_t errlen);

#endif
