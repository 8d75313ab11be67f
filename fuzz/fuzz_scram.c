/*
 * SCRAM exchange parsers on untrusted bytes. The first input byte picks the
 * side; the rest is split on '\n' into successive messages:
 *   even: server side (client-first, client-final) against a fixed verifier,
 *         bit 1 unknown user, bits 2-3 channel binding
 *   odd:  client side (server-first, server-final)
 * Also checks that nothing but a correct proof is ever accepted.
 */
#include "core/crypto.h"
#include "pg/scram.h"

#include <string.h>

static pc_scram_verifier_t verifier;
static bool have_verifier;

static size_t next_line(const uint8_t **p, size_t *n, const char **line)
{
    const uint8_t *nl = memchr(*p, '\n', *n);
    size_t len = nl ? (size_t)(nl - *p) : *n;
    *line = (const char *)*p;
    *p += nl ? len + 1 : len;
    *n -= nl ? len + 1 : len;
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!have_verifier) {
        static const uint8_t salt[16] = "0123456789abcdef";
        PC_BUG_ON(!pc_scram_verifier_from_salt("pencil", 6, salt, sizeof salt, 16, &verifier));
        have_verifier = true;
    }
    if (size < 1) return 0;
    bool server_side = (data[0] & 1) == 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    const char *m1, *m2;
    size_t l1 = next_line(&p, &n, &m1);
    size_t l2 = next_line(&p, &n, &m2);
    char out[PC_SCRAM_MAX_OUT];
    size_t out_len;
    const char *problem;
    if (server_side) {
        pc_scram_server_t s;
        /* A fixed server nonce lets inputs reach the proof check; they still cannot forge it. */
        pc_scram_server_init(&s, (data[0] & 2) ? NULL : &verifier, "fuzz", "srvnonce");
        /* Bits 2-3: channel binding offered / SCRAM-SHA-256-PLUS chosen. */
        static const uint8_t cb[32] = {1, 2, 3};
        bool offered = data[0] & 4, plus = offered && (data[0] & 8);
        PC_BUG_ON(!pc_scram_server_set_channel_binding(&s, offered, plus, cb, sizeof cb));
        pc_scram_result_t r =
            pc_scram_server_first(&s, m1, l1, out, sizeof out, &out_len, &problem);
        if (r == PC_SCRAM_OK) {
            PC_BUG_ON(out_len == 0 || out_len >= sizeof out || strlen(out) != out_len);
            r = pc_scram_server_final(&s, m2, l2, out, sizeof out, &out_len, &problem);
            /* Only someone who knows the password can produce the proof. */
            PC_BUG_ON(r == PC_SCRAM_OK);
        }
        PC_BUG_ON(r != PC_SCRAM_OK && problem == NULL);
        pc_scram_server_clear(&s);
    } else {
        pc_scram_client_t c;
        PC_BUG_ON(!pc_scram_client_init(&c, "pencil", 6, "fuzznonce"));
        PC_BUG_ON(pc_scram_client_first(&c, out, sizeof out) == 0);
        pc_scram_result_t r =
            pc_scram_client_final(&c, m1, l1, out, sizeof out, &out_len, &problem);
        if (r == PC_SCRAM_OK) {
            PC_BUG_ON(out_len == 0 || strlen(out) != out_len);
            r = pc_scram_client_verify(&c, m2, l2, &problem);
        }
        PC_BUG_ON(r != PC_SCRAM_OK && problem == NULL);
        pc_scram_client_clear(&c);
    }
    /* Verifier text parser and base64 on the same bytes. */
    pc_scram_verifier_t v;
    if (pc_scram_verifier_parse((const char *)data, size, &v)) {
        char text[PC_SCRAM_VERIFIER_TEXT_MAX];
        PC_BUG_ON(pc_scram_verifier_format(&v, text, sizeof text) == 0);
    }
    uint8_t raw[1024];
    size_t raw_len;
    if (pc_b64_decode((const char *)data, size, raw, sizeof raw, &raw_len)) {
        char enc[1400];
        /* Strict decoding means re-encoding gives back the very same text. */
        PC_BUG_ON(pc_b64_encode(raw, raw_len, enc, sizeof enc) != size ||
                  memcmp(enc, data, size) != 0);
    }
    return 0;
}
