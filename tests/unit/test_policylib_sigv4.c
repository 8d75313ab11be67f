/* AWS SigV4 helper: vectors from OPA's providers.aws.sign_req cases. */
#include "plib_test.h"

#include "policy/lib/sigv4.h"

static void sign(const char *const *hn, const char *const *hv, size_t nh, const char *body, bool unsigned_payload,
                 const char *token, const char *want_sig)
{
    pc_plib_sigv4_in_t in = {
        .hdr_names = hn, .hdr_values = hv, .nhdrs = nh, .method = "get", .host = "example.com",
        .escaped_path = "", .raw_query = "", .body = body, .body_len = body ? strlen(body) : 0,
        .service = "s3", .access_key = "MYAWSACCESSKEYGOESHERE",
        .secret_key = "MYAWSSECRETACCESSKEYGOESHERE", .region = "us-east-1", .session_token = token,
        .time_ns = 1451311705000000000LL, .disable_payload_signing = unsigned_payload,
    };
    pc_plib_sigv4_out_t out;
    assert_true(pc_plib_sigv4_sign(&in, &out));
    const char *sig = strstr(out.authorization, "Signature=");
    assert_non_null(sig);
    assert_string_equal(sig + 10, want_sig);
    assert_string_equal(out.amz_date, "20151228T140825Z");
    assert_string_equal(out.host, "example.com");
    pc_plib_sigv4_free(&out);
}

static void test_vectors(void **state)
{
    (void)state;
    sign(NULL, NULL, 0, NULL, false, NULL, "0047a7016c81e5c7f29cd522f97e911e04fc472fced0aee7916cbc287ad6c8e3");
    sign(NULL, NULL, 0, NULL, false, "MYAWSSECURITYTOKENGOESHERE",
         "23c31bda8a74630c0a94f6b82a3511e7e74728df98e6f54ed0840488dbbdc8d1");
    sign(NULL, NULL, 0, "{\"example\":[1,2,3,4]}", false, NULL,
         "5fb06ab1cfd74c8fcb3af95b8cce696708cf6155d971dac10f254d79799c6e88");
    const char *hn[] = {"foo", "User-Agent"}, *hv[] = {"bar", "ignored"};
    sign(hn, hv, 2, NULL, false, NULL, "8f1dc7c9b9978356a0d0989fd26a95307f4f8a4aa264d8220647b7097d839952");
    sign(hn, hv, 1, "{\"example\":[1,2,3,4]}", true, NULL,
         "c6e6db654e92172f71e18c714c123711de069ac6fd7df1348e5b28fd05532028");
    /* a caller's x-amz-content-sha256 is what gets signed */
    const char *hn2[] = {"foo", "X-Amz-Content-Sha256"}, *hv2[] = {"bar", "existing-value"};
    sign(hn2, hv2, 2, "{\"example\":[1,2,3,4]}", false, NULL,
         "42bcac7fc6d170e09be72fdf38b62e59361265bc59d5f9156f0d6faf889e98ba");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_vectors)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
