/* Hashing primitives against published vectors (FIPS 180-2, RFC 4231). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/crypto.h"

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[PC_SHA256_LEN];
    char h[65];
    pc_sha256("abc", 3, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    pc_sha256("", 0, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac_sha256_rfc4231(void **state)
{
    (void)state;
    uint8_t d[PC_SHA256_LEN], key[131];
    char h[65];
    /* Test case 1: 20-byte key. */
    memset(key, 0x0b, 20);
    pc_hmac_sha256(key, 20, "Hi There", 8, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    /* Test case 2: short key. */
    pc_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, d);
    hex(d, sizeof d, h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a 131-byte key, longer than the block, is hashed first. */
    memset(key, 0xaa, sizeof key);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    pc_hmac_sha256(key, sizeof key, m6, strlen(m6), d);
    hex(d, sizeof d, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* Exactly one block of key is used as is. */
    uint8_t k64[64], d2[PC_SHA256_LEN];
    memset(k64, 0x42, sizeof k64);
    pc_hmac_sha256(k64, sizeof k64, "x", 1, d);
    pc_hmac_sha256(k64, 63, "x", 1, d2);
    assert_memory_not_equal(d, d2, sizeof d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_hmac_sha256_rfc4231),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
