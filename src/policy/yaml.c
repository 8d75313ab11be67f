/* YAML documents as values (data files, input files, METADATA annotations). */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "policy/value.h"

static const pc_value *yaml_node(pc_arena *a, yaml_document_t *doc, yaml_node_t *n, int depth)
{
    if (!n || depth > 500) return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)n->data.scalar.value;
        size_t l = n->data.scalar.length;
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (l == 0 || !strcmp(s, "null") || !strcmp(s, "~")) return pc_value_null();
            if (!strcmp(s, "true") || !strcmp(s, "True")) return pc_value_bool(true);
            if (!strcmp(s, "false") || !strcmp(s, "False")) return pc_value_bool(false);
            const pc_value *num = pc_value_number_text(a, s, l);
            if (num) return num;
        }
        return pc_value_string(a, s, l);
    }
    case YAML_SEQUENCE_NODE: {
        pc_vbuf b;
        pc_vbuf_init(&b, a);
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++)
            pc_vbuf_push(&b, yaml_node(a, doc, yaml_document_get_node(doc, *it), depth + 1));
        return pc_vbuf_array(&b);
    }
    case YAML_MAPPING_NODE: {
        pc_obuf b;
        pc_obuf_init(&b, a);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            const pc_value *k = yaml_node(a, doc, yaml_document_get_node(doc, p->key), depth + 1);
            if (k && k->kind != PC_STRING) {
                pc_str t = {0};
                pc_value_to_json(&t, k);
                k = pc_value_string(a, t.p, t.len);
                pc_str_free(&t);
            }
            pc_obuf_put(&b, k, yaml_node(a, doc, yaml_document_get_node(doc, p->value), depth + 1));
        }
        return pc_obuf_object(&b);
    }
    default: return NULL;
    }
}

const pc_value *pc_yaml_parse(pc_arena *a, const char *text, size_t len, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) return NULL;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    const pc_value *v = NULL;
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, errlen, "yaml: %s", p.problem ? p.problem : "parse error");
        yaml_parser_delete(&p);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    v = root ? yaml_node(a, &doc, root, 0) : pc_value_empty_object();
    if (!v) snprintf(err, errlen, "yaml: unsupported document");
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return v;
}


