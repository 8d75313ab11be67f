/*
 * YAML <-> JSON text for OPA's yaml.* built-ins (which convert through JSON,
 * like sigs.k8s.io/yaml): libyaml parses, jansson reads JSON for emitting.
 * Both return malloc'd NUL-terminated text (caller frees) or NULL with an
 * error in err ("yaml: line 1: did not find expected ',' or ']'").
 */
#ifndef PC_POLICY_LIB_YAMLCONV_H
#define PC_POLICY_LIB_YAMLCONV_H

#include <stddef.h>

/** First YAML document as JSON (an empty document is null). */
char *pc_plib_yaml_to_json(const char *s, size_t n, size_t *out_len, char *err, size_t errlen);
/** JSON document as block-style YAML the way go-yaml prints it. */
char *pc_plib_json_to_yaml(const char *json, size_t n, size_t *out_len, char *err, size_t errlen);

#endif
