/* Unit tests for drd/lib/kube: which resource bucket an etcd key counts in (the scan over a real
 * etcd is tests/integration/drill_resources.sh). No network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/lib/kube/kube.h"

#include <string.h>

static const char *bucket(const char *key)
{
    static char out[DR_KEY_COUNT_NAME_MAX];
    size_t n = dr_kube_resource(key, strlen(key), out, sizeof out);
    assert_int_equal(n, n ? strlen(out) : 0);
    return n ? out : "(other)";
}

static void test_resource(void **state)
{
    (void)state;
    assert_string_equal(bucket("/registry/pods/default/web-0"), "pods");
    assert_string_equal(bucket("/registry/secrets/kube-system/x"), "secrets");
    assert_string_equal(bucket("/registry/ranges/serviceips"), "ranges");
    /* a group's resources: group/resource */
    assert_string_equal(bucket("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
                        "apiregistration.k8s.io/apiservices");
    assert_string_equal(bucket("/registry/example.com/widgets/ns/w1"), "example.com/widgets");
    /* no resource: other */
    assert_string_equal(bucket("/registry/health"), "(other)");
    assert_string_equal(bucket("/registry/example.com/loose"), "(other)");
    assert_string_equal(bucket("/registry//x"), "(other)");
    assert_string_equal(bucket("/registry/UPPER/x"), "(other)");
    assert_string_equal(bucket("/registry/a b/x"), "(other)");
    assert_string_equal(bucket("/registry/"), "(other)");
    assert_string_equal(bucket("/other/key"), "(other)");
    assert_string_equal(bucket("registry/pods/x"), "(other)");
    assert_string_equal(bucket(""), "(other)");
    char longname[300] = "/registry/";
    memset(longname + 10, 'a', 200);
    strcpy(longname + 210, "/x");
    assert_string_equal(bucket(longname), "(other)");
    /* bytes after the name do not matter, a NUL inside the name does */
    assert_int_equal(dr_kube_resource("/registry/po\0ds/x", 17, (char[128]){0}, 128), 0);
    assert_int_equal(dr_kube_resource("/registry/pods/\xff\x00", 16, (char[128]){0}, 128), 4);
    /* a name that does not fit the caller's buffer is other */
    assert_int_equal(dr_kube_resource("/registry/pods/x", 16, (char[4]){0}, 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
