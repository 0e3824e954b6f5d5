/* Unit tests for drd/lib/http's address parsing: HOST:PORT, [IPV6]:PORT, :PORT (every address,
 * dual stack) and the malformed forms refused with DR_EUSAGE naming the flag. No sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/lib/http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void test_addr_forms(void **state)
{
    (void)state;
    struct sockaddr_storage sa;
    unsigned len = 0;
    assert_int_equal(dr_http_parse_addr("127.0.0.1:9100", "--x", &sa, &len), 0);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 9100);
    assert_int_equal(dr_http_parse_addr("[::1]:9100", "--x", &sa, &len), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
    assert_true(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
    assert_int_equal(ntohs(s6->sin6_port), 9100);
    assert_int_equal(dr_http_parse_addr(":9100", "--x", &sa, &len), 0);
    assert_int_equal(sa.ss_family, AF_INET6);
    assert_true(IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr));
    assert_int_equal(dr_http_parse_addr("localhost:80", "--x", &sa, &len), 0);
    const char *bad[] = {
        "nope",  "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "1.2.3.4:-1",
        "[::1]", "[::1]9100", "::1:9100",   "127.0.0.1:9x",    "no.such.host.invalid:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dr_http_parse_addr(bad[i], "--status-listen", &sa, &len), DR_EUSAGE);
        assert_non_null(strstr(dr_error_msg(), "--status-listen"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_addr_forms)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
