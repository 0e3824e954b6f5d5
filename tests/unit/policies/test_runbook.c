/* Unit tests for policies/runbook.c: the shipped runbooks parse; bad runbooks are refused with
 * file:line:column (unknown step type, missing field, unknown key, duplicate name, hook without
 * command); the step machine's transitions (ok, retry after its delay, fail, resume of a step
 * that was running at a crash, retry of a failed run) and its state file round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "drd/core/core.h"
#include "drd/lib/yaml/yaml.h"
#include "policies/policies.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *text, dr_runbook **rb)
{
    dr_yaml_doc *doc = NULL;
    int rc = dr_yaml_parse("rb.yaml", text, strlen(text), &doc);
    if (rc < 0)
        return rc;
    return dr_runbook_from_yaml(doc, rb);
}

static void bad(const char *text, const char *want)
{
    dr_runbook *rb = NULL;
    int rc = parse(text, &rb);
    if (rc != DR_EUSAGE || !strstr(dr_error_msg(), want)) {
        print_error("rc %d, message '%s', want '%s'\n", rc, dr_error_msg(), want);
        getenv("ALL") ? (void)0 : fail();
    }
    assert_null(rb);
}

static void test_shipped(void **state)
{
    (void)state;
    static const char *const files[] = {"planned-switchover.yaml", "emergency-failover.yaml",
                                        "failback.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char path[1024];
        dr_yaml_doc *doc = NULL;
        dr_runbook *rb = NULL;
        snprintf(path, sizeof path, "%s/%s", RUNBOOK_DIR, files[i]);
        assert_int_equal(dr_yaml_load(path, &doc), 0);
        if (dr_runbook_from_yaml(doc, &rb) < 0) {
            print_error("%s\n", dr_error_msg());
            fail();
        }
        assert_true(rb->n_steps >= 3);
        dr_runbook_free(rb);
    }
}

static void test_good(void **state)
{
    (void)state;
    dr_runbook *rb = NULL;
    assert_int_equal(parse("runbook: x\nsteps:\n"
                           "  - { name: c, type: check, checks: [lag, epoch], max_lag: 5 }\n"
                           "  - { name: f, type: fence, side: new-primary, retries: 3, "
                           "retry_delay: 1s, timeout: 10s }\n"
                           "  - { name: h, type: hook-exec, command: [/bin/echo, hi] }\n"
                           "  - { name: u, type: hook-http, url: 'http://127.0.0.1:1/x' }\n"
                           "  - { name: p, type: promote }\n",
                           &rb),
                     0);
    assert_int_equal(rb->n_steps, 5);
    assert_int_equal(rb->steps[0].checks, DR_CHECK_LAG | DR_CHECK_EPOCH);
    assert_int_equal(rb->steps[0].max_lag, 5);
    assert_int_equal(rb->steps[1].side, DR_SIDE_NEW_PRIMARY);
    assert_int_equal(rb->steps[1].retries, 3);
    assert_int_equal(rb->steps[1].retry_delay_ms, 1000);
    assert_int_equal(rb->steps[1].timeout_ms, 10000);
    assert_int_equal(rb->steps[2].command.n, 2);
    assert_string_equal(rb->steps[2].command.v[1], "hi");
    assert_string_equal(rb->steps[3].url, "http://127.0.0.1:1/x");
    assert_int_equal(rb->steps[4].timeout_ms, 60000); /* the type's default */
    dr_runbook_free(rb);
}

static void test_bad(void **state)
{
    (void)state;
    bad("runbook: x\nsteps:\n  - { name: a, type: teleport }\n",
        "rb.yaml:3:22: step a: unknown step type 'teleport'");
    bad("runbook: x\nsteps:\n  - { type: fence }\n", "rb.yaml:3:5: steps[0]: 'name' is required");
    bad("runbook: x\nsteps:\n  - { name: a }\n", "rb.yaml:3:5: step a: 'type' is required");
    bad("runbook: x\nsteps:\n  - { name: a, type: fence, colour: red }\n",
        "rb.yaml:3:29: step a: unknown key 'colour' for a fence step");
    bad("runbook: x\nsteps:\n  - { name: a, type: check, command: [x] }\n",
        "rb.yaml:3:29: step a: unknown key 'command' for a check step");
    bad("runbook: x\nsteps:\n  - { name: a, type: hook-exec }\n",
        "rb.yaml:3:5: step a: a hook-exec step needs 'command'");
    bad("runbook: x\nsteps:\n  - { name: a, type: hook-exec, command: 'rm -rf /' }\n",
        "rb.yaml:3:42: step a: command: expected a list");
    bad("runbook: x\nsteps:\n  - { name: a, type: hook-http, url: 'https://x' }\n",
        "rb.yaml:3:38: step a: url: expected http://host:port/path");
    bad("runbook: x\nsteps:\n  - { name: a, type: fence }\n  - { name: a, type: promote }\n",
        "rb.yaml:4:13: step name 'a' is used twice (first at line 3)");
    bad("runbook: x\nsteps:\n  - { name: a, type: fence, timeout: soon }\n",
        "rb.yaml:3:38: step a: timeout: expected a duration");
    bad("runbook: x\nsteps:\n  - { name: a, type: fence, retries: 101 }\n",
        "rb.yaml:3:38: step a: retries: expected a whole number 0..100");
    bad("runbook: x\nsteps:\n  - { name: a, type: fence, side: middle }\n",
        "rb.yaml:3:35: step a: side: expected old-primary or new-primary");
    bad("runbook: x\nsteps:\n  - { name: a, type: check, checks: [vibes] }\n",
        "rb.yaml:3:38: step a: unknown check 'vibes'");
    bad("runbook: x\nsteps: []\n", "rb.yaml:2:8: 'steps' is required");
    bad("steps:\n  - { name: a, type: fence }\n", "rb.yaml:1:1: 'runbook' (its name) is required");
    bad("runbook: x\nstep:\n  - { name: a, type: fence }\n", "rb.yaml:2:1: unknown key 'step'");
    bad("- a\n", "rb.yaml:1:1: expected a map");
}

static dr_runbook *machine_book(void)
{
    dr_runbook *rb = NULL;
    assert_int_equal(parse("runbook: m\nsteps:\n"
                           "  - { name: a, type: check }\n"
                           "  - { name: b, type: fence, retries: 1, retry_delay: 2s }\n"
                           "  - { name: c, type: record }\n",
                           &rb),
                     0);
    return rb;
}

static void test_machine(void **state)
{
    (void)state;
    dr_runbook *rb = machine_book();
    dr_run r;
    size_t step = 99;
    int64_t wait = 0;
    assert_int_equal(dr_run_init(&r, rb), 0);
    assert_int_equal(dr_run_next(&r, rb, 1000, &step, &wait), 0);
    assert_int_equal(step, 0);
    assert_int_equal(r.steps[0].status, DR_STEP_RUNNING);
    dr_run_step_done(&r, rb, 0, "fine", 1100);
    assert_int_equal(r.steps[0].status, DR_STEP_OK);
    /* b fails once: waits its retry delay, then runs again */
    assert_int_equal(dr_run_next(&r, rb, 1200, &step, &wait), 0);
    assert_int_equal(step, 1);
    dr_run_step_done(&r, rb, DR_EUNAVAILABLE, "down", 1300);
    assert_int_equal(r.steps[1].status, DR_STEP_WAITING);
    assert_int_equal(r.status, DR_RUN_ACTIVE);
    assert_int_equal(dr_run_next(&r, rb, 2300, &step, &wait), DR_ETIMEOUT);
    assert_int_equal(wait, 1000);
    assert_int_equal(dr_run_next(&r, rb, 3300, &step, &wait), 0);
    assert_int_equal(r.steps[1].attempts, 2);
    /* no retry left: the run fails */
    dr_run_step_done(&r, rb, DR_EUNAVAILABLE, "still down", 3400);
    assert_int_equal(r.steps[1].status, DR_STEP_FAILED);
    assert_int_equal(r.status, DR_RUN_FAILED);
    assert_int_equal(dr_run_next(&r, rb, 3500, &step, &wait), 1);
    /* resume after a failure: the failed step again, from attempt 1 */
    dr_run_retry(&r);
    assert_int_equal(dr_run_next(&r, rb, 4000, &step, &wait), 0);
    assert_int_equal(step, 1);
    assert_int_equal(r.steps[1].attempts, 1);
    /* a crash while it runs: the saved state says running; loaded, the step runs again */
    dr_buf b = {0};
    dr_run back;
    assert_int_equal(dr_run_format(&r, &b), 0);
    assert_int_equal(dr_run_parse(b.data, b.len, &back), 0);
    assert_memory_equal(&back, &r, sizeof r);
    assert_int_equal(dr_run_next(&back, rb, 5000, &step, &wait), 0);
    assert_int_equal(step, 1);
    assert_int_equal(back.steps[1].attempts, 2);
    dr_run_step_done(&back, rb, 0, "fenced\nwith a \\ and \x01", 5100);
    assert_int_equal(dr_run_next(&back, rb, 5200, &step, &wait), 0);
    assert_int_equal(step, 2);
    dr_run_step_done(&back, rb, 0, "", 5300);
    assert_int_equal(back.status, DR_RUN_DONE);
    assert_int_equal(dr_run_next(&back, rb, 5400, &step, &wait), 1);
    /* the state file keeps odd results exactly */
    b.len = 0;
    assert_int_equal(dr_run_format(&back, &b), 0);
    assert_int_equal(dr_run_parse(b.data, b.len, &r), 0);
    assert_string_equal(r.steps[1].result, "fenced\nwith a \\ and \x01");
    assert_int_equal(r.status, DR_RUN_DONE);
    /* garbage is refused */
    assert_int_equal(dr_run_parse("drd-run 1\nsteps 2\nstep 0 ok 1 0 0 0 0 \n", 38, &r), DR_EPROTO);
    assert_int_equal(dr_run_parse("hello", 5, &r), DR_EPROTO);
    dr_buf_free(&b);
    dr_runbook_free(rb);
}

static int collect(void *ctx, const char *name)
{
    dr_buf *b = ctx;
    return dr_buf_printf(b, "%s%s", b->len ? "," : "", name);
}

static void test_enc_keys(void **state)
{
    (void)state;
    char out[64];
    static const char v1[] = "k8s:enc:aesgcm:v1:key2:\x01\x02";
    assert_int_equal(dr_k8s_enc_key(v1, sizeof v1 - 1, out, sizeof out), 1);
    assert_string_equal(out, "aesgcm:key2");
    assert_int_equal(dr_k8s_enc_key("k8s:enc:kms:v2:vault-1:abc", 26, out, sizeof out), 1);
    assert_string_equal(out, "kms:vault-1");
    assert_int_equal(dr_k8s_enc_key("k8s:enc:secretbox:v1:s:", 23, out, sizeof out), 1);
    assert_string_equal(out, "secretbox:s");
    /* not encrypted, or not the format */
    assert_int_equal(dr_k8s_enc_key("plain", 5, out, sizeof out), 0);
    assert_int_equal(dr_k8s_enc_key("k8s:enc:aesgcm:v1:key2", 22, out, sizeof out), 0);
    assert_int_equal(dr_k8s_enc_key("k8s:enc:aesgcm:x1:key2:", 23, out, sizeof out), 0);
    assert_int_equal(dr_k8s_enc_key("k8s:enc::v1:key2:", 17, out, sizeof out), 0);
    assert_int_equal(dr_k8s_enc_key("k8s:enc:aesgcm:v1::", 19, out, sizeof out), 0);
    assert_int_equal(dr_k8s_enc_key("k8s:enc:aesgcm:v1:a b:", 22, out, sizeof out), 0);
    /* a name too long for out */
    assert_int_equal(dr_k8s_enc_key("k8s:enc:aesgcm:v1:0123456789:", 29, out, 12), 0);

    static const char cfg[] = "apiVersion: apiserver.config.k8s.io/v1\n"
                              "kind: EncryptionConfiguration\n"
                              "resources:\n"
                              "  - resources: [secrets, configmaps]\n"
                              "    providers:\n"
                              "      - aesgcm: { keys: [ { name: k2, secret: x }, { name: k1, "
                              "secret: y } ] }\n"
                              "      - kms: { name: vault, endpoint: unix:///k.sock }\n"
                              "      - identity: {}\n";
    dr_yaml_doc *doc = NULL;
    dr_buf b = {0};
    assert_int_equal(dr_yaml_parse("enc.yaml", cfg, sizeof cfg - 1, &doc), 0);
    assert_int_equal(dr_k8s_enc_config_keys(doc, collect, &b), 0);
    assert_string_equal(b.data, "aesgcm:k2,aesgcm:k1,kms:vault");
    dr_yaml_free(doc);
    assert_int_equal(dr_yaml_parse("x.yaml", "a: 1\n", 5, &doc), 0);
    assert_int_equal(dr_k8s_enc_config_keys(doc, collect, &b), DR_EUSAGE);
    assert_non_null(strstr(dr_error_msg(), "x.yaml:1:1: not an EncryptionConfiguration"));
    dr_yaml_free(doc);
    dr_buf_free(&b);
}

/* values counted per key name; names past the table go to other; the line and JSON forms */
static void test_enc_counts(void **state)
{
    (void)state;
    dr_k8s_enc_counts *c = calloc(1, sizeof *c);
    char line[64], v[64];
    dr_buf b = {0};
    assert_non_null(c);
    dr_k8s_enc_counts_line(c, line, sizeof line);
    assert_string_equal(line, "none");
    dr_k8s_enc_counts_add(c, "k8s:enc:aesgcm:v1:k1:x", 22);
    dr_k8s_enc_counts_add(c, "plain", 5);
    dr_k8s_enc_counts_add(c, "k8s:enc:kms:v2:vault:x", 22);
    dr_k8s_enc_counts_add(c, "k8s:enc:aesgcm:v1:k1:y", 22);
    dr_k8s_enc_counts_line(c, line, sizeof line);
    assert_string_equal(line, "aesgcm:k1 (2), kms:vault (1)");
    assert_int_equal(dr_k8s_enc_counts_json(c, &b), 0);
    assert_string_equal(b.data, "{\"values\": 4, \"keys\": {\"aesgcm:k1\": 2, \"kms:vault\": 1}, "
                                "\"other\": 0}");
    for (int i = 0; i < DR_K8S_ENC_NAMES; i++) { /* 62 more fill the table, 2 go to other */
        int n = snprintf(v, sizeof v, "k8s:enc:aescbc:v1:n%d:x", i);
        dr_k8s_enc_counts_add(c, v, (size_t)n);
    }
    assert_int_equal(c->n, DR_K8S_ENC_NAMES);
    assert_int_equal(c->other, 2);
    assert_int_equal(c->values, 4 + DR_K8S_ENC_NAMES);
    dr_k8s_enc_counts_line(c, line, sizeof line);
    assert_int_equal(strlen(line), sizeof line - 1);
    assert_string_equal(line + sizeof line - 4, "...");
    dr_buf_free(&b);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped),  cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),      cmocka_unit_test(test_machine),
        cmocka_unit_test(test_enc_keys), cmocka_unit_test(test_enc_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
