/*
 * Configuration loaders on untrusted bytes: the connector file (from memory,
 * no file checks) and a configuration-object snapshot, plus the duration and
 * size parsers. Every failure must come with a message.
 */
#include "core/config.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = '\0';
    pc_config_t cfg;
    if (pc_config_load_yaml((const char *)data, size, "fuzz.yaml", "/tmp", false, &cfg, err,
                            sizeof err))
        pc_config_free(&cfg);
    else
        PC_BUG_ON(err[0] == '\0');

    err[0] = '\0';
    pc_snapshot_t *s =
        pc_snapshot_load_yaml((const char *)data, size, "fuzz.yaml", 1, err, sizeof err);
    if (s) {
        for (size_t i = 0; i < s->n_users; i++)
            PC_BUG_ON(pc_snapshot_user(s, s->users[i].username) != &s->users[i]);
        for (size_t i = 0; i < s->n_listeners; i++)
            PC_BUG_ON(!pc_snapshot_resource(s, s->listeners[i].resource));
        pc_snapshot_unref(pc_snapshot_ref(s));
        pc_snapshot_unref(s);
    } else {
        PC_BUG_ON(err[0] == '\0');
    }

    if (size < 64) {
        char text[64];
        memcpy(text, data, size);
        text[size] = '\0';
        uint64_t v;
        (void)pc_parse_duration_ms(text, &v);
        (void)pc_parse_size(text, &v);
    }
    return 0;
}
