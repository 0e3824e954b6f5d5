/*
 * Flags shared by the commands that use a store (snapshot, catalog, key, restore, drill): the
 * rows of the option table (policies/config.c, the same rows as the config keys) and a few flags
 * of the commands' own, one parser (dr_flags_parse), each command naming the flags it accepts.
 */
#ifndef DRD_APP_STORE_ARGS_H
#define DRD_APP_STORE_ARGS_H

#include "drd/app/cmd.h"
#include "drd/lib/etcd/etcd.h"
#include "drd/lib/repo/repo.h"
#include "policies/policies.h"

#define STORE_HELP                                                                                 \
    "  --store URL          file:///path or s3://bucket/prefix\n"                                  \
    "  --s3-endpoint H:P    S3 endpoint (s3:// stores); credentials from AWS_ACCESS_KEY_ID and\n"  \
    "                       AWS_SECRET_ACCESS_KEY or a credentials file "                          \
    "(AWS_SHARED_CREDENTIALS_FILE)\n"                                                              \
    "  --s3-region R        region for signing (default us-east-1)\n"                              \
    "  --s3-cacert F        CA bundle for https to the endpoint\n"                                 \
    "  --s3-insecure-http   plain http to the endpoint (trusted networks; no session token)\n"     \
    "  --s3-part-size N     multipart part size in MiB (default 8)\n"                              \
    "  --catalog F          local catalog file (default: under $XDG_STATE_HOME/drd or\n"           \
    "                       ~/.local/state/drd; its dir must be private)\n"                        \
    "  --timeout D          deadline per request: to etcd (default 10s), to the store without\n"   \
    "                       progress (default 30s)\n"
#define KEY_HELP                                                                                   \
    "  --key-file F         keyring (drd key generate); objects are encrypted with its current "   \
    "key\n"
/* Readers: with a keyring, only objects encrypted under it whose manifest authenticates. */
#define KEY_READ_HELP                                                                              \
    "  --key-file F         keyring: only objects encrypted under its keys, with authentic\n"      \
    "                       manifests, are used (without one: only unencrypted objects)\n"         \
    "  --allow-plaintext    with --key-file, also use unencrypted objects (which anyone who\n"     \
    "                       can write to the store could have planted)\n"
#define ETCD_HELP                                                                                  \
    "  --etcd URLS          etcd endpoints, comma-separated http(s)://host:port\n"                 \
    "  --etcd-cacert F --etcd-cert F --etcd-key F   TLS to etcd\n" ETCD_RECV_HELP

enum {
    O_ETCD = 2000,
    O_ECA,
    O_ECERT,
    O_EKEY,
    O_EMAXRECV,
    O_TIMEOUT,
    O_STORE,
    O_S3EP,
    O_S3REGION,
    O_S3CA,
    O_S3HTTP,
    O_S3PART,
    O_CATALOG,
    O_KEYFILE,
    O_NOENC,
    O_COMP,
    O_LABEL,
    O_JSON,
    O_PERIOD,
    O_MAXBYTES,
    O_UNTIL,
    O_ALL,
    O_SAMPLE,
    O_OUT,
    O_KLAST,
    O_KHOUR,
    O_KDAY,
    O_KWEEK,
    O_KMONTH,
    O_DRY,
    O_NAME,
    O_KEYRING,
    O_SNAPSHOT,
    O_REVISION,
    O_TIME,
    O_DATADIR,
    O_ICLUSTER,
    O_IPEER,
    O_BUMP,
    O_MARKCOMP,
    O_PREFIX,
    O_TARGET,
    O_OVERWRITE,
    O_LIMIT,
    O_ALLOWPLAIN,
    O_MEMBERS,
    O_PSK,
};

typedef struct args {
    const char *cmd;
    dr_etcd_opts etcd;
    dr_repo_opts repo;
    dr_compress comp;
    char labels[512];
    int json, all, dry_run, mark_compacted, overwrite, psk;
    int64_t period_ms, max_bytes, until, sample, revision, time_ms, bump, limit;
    const char *out, *name, *keyring, *snapshot, *data_dir, *icluster, *ipeer, *prefix, *target,
        *members_dir;
    dr_retention keep;
    dr_conf_job job; /* the snapshot rows of the option table: compression, segments */
    const char *pos; /* the positional ID */
} args;

#define STORE_FLAGS O_STORE, O_S3EP, O_S3REGION, O_S3CA, O_S3HTTP, O_S3PART, O_CATALOG, O_TIMEOUT
#define ETCD_FLAGS O_ETCD, O_ECA, O_ECERT, O_EKEY, O_EMAXRECV
#define KEY_READ_FLAGS O_KEYFILE, O_ALLOWPLAIN

/* Parses argv; allowed lists the flags this command takes (0-terminated); positional: one
 * optional positional argument (a->pos). */
int args_parse(int argc, char **argv, const int *allowed, int positional, args *a);
/* DR_EUSAGE "drd CMD: FLAG is required" when v is empty. */
int args_need(const char *v, const char *flag, const char *cmd);
/* Opens the repository (writer: needs a key or --no-encryption). */
int args_open_repo(args *a, int writer, dr_repo **r);
int args_open_etcd(args *a, dr_etcd **e);

#endif
