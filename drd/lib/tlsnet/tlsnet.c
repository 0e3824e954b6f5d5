/*
 * drd tlsnet: TLS 1.3 on a blocking socket with SO_RCVTIMEO/SO_SNDTIMEO as the deadline, a
 * write buffer that gathers small frames into one record, and a sleep-based rate cap on flush.
 * OpenSSL's error queue is turned into one line here (never with key material in it).
 *
 * External PSK: both sides hold the same file; the TLS key is SHA-256 of its decoded bytes, used
 * as the PSK of a TLS 1.3 session with the fixed identity "drd-volume" and TLS_AES_128_GCM_SHA256
 * (no certificate is involved; a wrong key fails the binder check at the server).
 */
#include "drd/lib/tlsnet/tlsnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PSK_ID "drd-volume"
enum { WBUF = 64 * 1024 };

struct dr_tls_conf {
    SSL_CTX *ctx;
    int psk_mode;
    unsigned char psk[32];
    int64_t timeout_ms;
};

struct dr_tls_listener {
    int fd;
    int port;
};

struct dr_tls_conn {
    int fd;
    SSL *ssl;
    int broken;
    char peer[80];
    unsigned char *wbuf;
    size_t wlen;
    uint64_t rate, rate_sent;
    int64_t rate_t0;
};

static const unsigned char aes128gcmsha256_id[] = {0x13, 0x01};

/* The first error in OpenSSL's queue as text (the queue is cleared). */
static const char *ssl_err(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    unsigned long last;
    if (!e) {
        snprintf(buf, cap, "%s", errno ? strerror(errno) : "connection closed");
        return buf;
    }
    ERR_error_string_n(e, buf, cap);
    while ((last = ERR_get_error()) != 0)
        ;
    /* "error:0A000126:SSL routines::unexpected eof while reading" -> the reason part */
    char *p = strrchr(buf, ':');
    return p && p[1] ? p + 1 : buf;
}

static SSL_SESSION *psk_session(SSL *ssl, const unsigned char *key)
{
    const SSL_CIPHER *c = SSL_CIPHER_find(ssl, aes128gcmsha256_id);
    SSL_SESSION *s = c ? SSL_SESSION_new() : NULL;
    if (!s)
        return NULL;
    if (!SSL_SESSION_set1_master_key(s, key, 32) || !SSL_SESSION_set_cipher(s, c) ||
        !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION)) {
        SSL_SESSION_free(s);
        return NULL;
    }
    return s;
}

static int psk_use_cb(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                      SSL_SESSION **sess)
{
    dr_tls_conf *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcmsha256_id);
    *sess = NULL;
    if (!cipher || (md && md != SSL_CIPHER_get_handshake_digest(cipher)))
        return 1; /* a HelloRetryRequest for another hash: no PSK */
    if (!(*sess = psk_session(ssl, c->psk)))
        return 0;
    *id = (const unsigned char *)PSK_ID;
    *idlen = strlen(PSK_ID);
    return 1;
}

static int psk_find_cb(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    dr_tls_conf *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    *sess = NULL;
    if (idlen != strlen(PSK_ID) || memcmp(id, PSK_ID, idlen) != 0)
        return 1; /* unknown identity: the handshake fails for want of a certificate */
    return (*sess = psk_session(ssl, c->psk)) != NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The PSK file: hex digits (whitespace around them ignored) or raw bytes; at least 32 bytes of
 * key either way. The TLS key is SHA-256 of those bytes. */
static int load_psk(dr_tls_conf *c, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    int rc = dr_fs_read_secret(path, "pre-shared key", 4096, &data, &len);
    if (rc < 0)
        return rc;
    size_t a = 0, b = len;
    while (a < b && (data[a] == ' ' || data[a] == '\n' || data[a] == '\r' || data[a] == '\t'))
        a++;
    while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\n' || data[b - 1] == '\r' ||
                     data[b - 1] == '\t'))
        b--;
    int hex = (b - a) % 2 == 0 && b > a;
    for (size_t i = a; hex && i < b; i++)
        hex = hexval((unsigned char)data[i]) >= 0;
    size_t keylen = hex ? (b - a) / 2 : len;
    if (hex) {
        for (size_t i = 0; i < keylen; i++)
            data[i] = (char)(hexval((unsigned char)data[a + 2 * i]) << 4 |
                             hexval((unsigned char)data[a + 2 * i + 1]));
    }
    if (keylen < DR_TLS_PSK_MIN) {
        rc = dr_error_set(DR_EAUTH,
                          "pre-shared key file '%s' holds %zu bytes of key, fewer than %d\n"
                          "HINT: make one with: drd key generate --psk --out FILE",
                          path, keylen, DR_TLS_PSK_MIN);
    } else {
        unsigned int n = 0;
        if (!EVP_Digest(data, keylen, c->psk, &n, EVP_sha256(), NULL))
            rc = dr_error_set(DR_ETLS, "cannot derive the TLS key");
    }
    dr_secure_zero(data, len);
    free(data);
    return rc;
}

static int load_certs(dr_tls_conf *c, const dr_tls_opts *o)
{
    char e[256];
    int rc = dr_fs_check_secret_file(o->key, "TLS private key");
    if (rc < 0)
        return rc;
    if (access(o->cert, R_OK) != 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO, "cannot read --cert '%s': %s",
                            o->cert, strerror(errno));
    if (access(o->cacert, R_OK) != 0)
        return dr_error_set(errno == ENOENT ? DR_ENOTFOUND : DR_EIO,
                            "cannot read --cacert '%s': %s", o->cacert, strerror(errno));
    if (SSL_CTX_use_certificate_chain_file(c->ctx, o->cert) != 1)
        return dr_error_set(DR_ETLS, "--cert '%s': %s", o->cert, ssl_err(e, sizeof e));
    if (SSL_CTX_use_PrivateKey_file(c->ctx, o->key, SSL_FILETYPE_PEM) != 1)
        return dr_error_set(DR_ETLS, "--key '%s': %s", o->key, ssl_err(e, sizeof e));
    if (SSL_CTX_check_private_key(c->ctx) != 1)
        return dr_error_set(DR_ETLS, "--key '%s' does not match --cert '%s'", o->key, o->cert);
    if (SSL_CTX_load_verify_locations(c->ctx, o->cacert, NULL) != 1)
        return dr_error_set(DR_ETLS, "--cacert '%s': %s", o->cacert, ssl_err(e, sizeof e));
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

int dr_tls_conf_new(const dr_tls_opts *o, dr_tls_conf **out)
{
    int certs = o->cert || o->key || o->cacert;
    *out = NULL;
    if (o->psk_file && certs)
        return dr_error_set(DR_EUSAGE, "give either --psk-file or --cert/--key/--cacert, not both");
    if (!o->psk_file && !certs)
        return dr_error_set(DR_EUSAGE, "--psk-file or --cert/--key/--cacert is required");
    if (certs && !(o->cert && o->key && o->cacert))
        return dr_error_set(DR_EUSAGE, "--cert, --key and --cacert go together");
    dr_tls_conf *c = calloc(1, sizeof *c);
    if (!c)
        return dr_error_set(DR_ENOMEM, "out of memory");
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 120000;
    int rc = 0;
    c->ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    if (!c->ctx) {
        rc = dr_error_set(DR_ENOMEM, "cannot create a TLS context");
        goto out;
    }
    SSL_CTX_set_app_data(c->ctx, c);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(c->ctx, 0);
    if (o->psk_file) {
        c->psk_mode = 1;
        if ((rc = load_psk(c, o->psk_file)) < 0)
            goto out;
        SSL_CTX_set_ciphersuites(c->ctx, "TLS_AES_128_GCM_SHA256");
        if (o->server)
            SSL_CTX_set_psk_find_session_callback(c->ctx, psk_find_cb);
        else
            SSL_CTX_set_psk_use_session_callback(c->ctx, psk_use_cb);
    } else {
        rc = load_certs(c, o);
    }
out:
    if (rc < 0)
        dr_tls_conf_free(c);
    else
        *out = c;
    return rc;
}

void dr_tls_conf_free(dr_tls_conf *c)
{
    if (!c)
        return;
    SSL_CTX_free(c->ctx);
    OPENSSL_cleanse(c->psk, sizeof c->psk);
    free(c);
}

int dr_tls_psk_generate(const char *path)
{
    unsigned char key[32];
    char hex[2 * sizeof key + 2];
    if (RAND_bytes(key, sizeof key) != 1)
        return dr_error_set(DR_EGENERIC, "no random bytes from OpenSSL");
    for (size_t i = 0; i < sizeof key; i++)
        snprintf(hex + 2 * i, 3, "%02x", key[i]);
    hex[2 * sizeof key] = '\n';
    hex[2 * sizeof key + 1] = 0;
    OPENSSL_cleanse(key, sizeof key);
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = dr_error_set(errno == EEXIST ? DR_EUSAGE : DR_EIO, "cannot create '%s': %s%s", path,
                          strerror(errno), errno == EEXIST ? " (refusing to replace a key)" : "");
    } else {
        size_t n = 2 * sizeof key + 1;
        if (write(fd, hex, n) != (ssize_t)n || fsync(fd) != 0)
            rc = dr_error_set(DR_EIO, "cannot write '%s': %s", path, strerror(errno));
        close(fd);
        if (rc < 0)
            unlink(path);
    }
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}

/* "HOST:PORT" or "[V6]:PORT" or ":PORT" into host and port strings. */
static int split_addr(const char *addr, const char *what, char *host, size_t hcap, char *port,
                      size_t pcap)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= pcap || (size_t)(colon - addr) >= hcap)
        return dr_error_set(DR_EUSAGE, "%s '%s': expected HOST:PORT", what, addr);
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    snprintf(port, pcap, "%s", colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return dr_error_set(DR_EUSAGE, "%s '%s': port is not a number", what, addr);
    return 0;
}

int dr_tls_listen(const char *addr, const char *what, dr_tls_listener **out)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *ai = NULL;
    int rc = split_addr(addr, what, host, sizeof host, port, sizeof port);
    if (rc < 0)
        return rc;
    int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (g != 0)
        return dr_error_set(DR_EUSAGE, "%s '%s': %s", what, addr, gai_strerror(g));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 16) != 0) {
        rc = dr_error_set(DR_EUSAGE, "%s '%s': cannot listen: %s", what, addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    dr_tls_listener *l = calloc(1, sizeof *l);
    if (!l) {
        close(fd);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    l->fd = fd;
    *out = l;
    return 0;
}

int dr_tls_listener_port(const dr_tls_listener *l)
{
    return l->port;
}

void dr_tls_listener_close(dr_tls_listener *l)
{
    if (!l)
        return;
    close(l->fd);
    free(l);
}

static void set_timeouts(int fd, int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int conn_new(int fd, dr_tls_conf *c, const char *peer, dr_tls_conn **out)
{
    dr_tls_conn *t = calloc(1, sizeof *t);
    if (!t || !(t->wbuf = malloc(WBUF)) || !(t->ssl = SSL_new(c->ctx))) {
        if (t)
            free(t->wbuf);
        free(t);
        close(fd);
        return dr_error_set(DR_ENOMEM, "out of memory");
    }
    t->fd = fd;
    snprintf(t->peer, sizeof t->peer, "%s", peer);
    set_timeouts(fd, c->timeout_ms);
    SSL_set_fd(t->ssl, fd);
    *out = t;
    return 0;
}

/* One line for a failed handshake or I/O call. */
static int io_error(dr_tls_conn *t, int r, const char *doing)
{
    char e[256];
    int se = SSL_get_error(t->ssl, r);
    int err = errno;
    t->broken = 1;
    if (se == SSL_ERROR_ZERO_RETURN)
        return dr_error_set(DR_EUNAVAILABLE, "%s %s: the peer closed the connection", doing,
                            t->peer);
    if (se == SSL_ERROR_SYSCALL && (err == EAGAIN || err == EWOULDBLOCK)) {
        ERR_clear_error();
        return dr_error_set(DR_ETIMEOUT, "%s %s: timed out", doing, t->peer);
    }
    const char *why = ssl_err(e, sizeof e);
    if (se == SSL_ERROR_SYSCALL || strstr(why, "unexpected eof"))
        return dr_error_set(DR_EUNAVAILABLE, "%s %s: connection lost (%s)", doing, t->peer,
                            err ? strerror(err) : "closed by the peer");
    return dr_error_set(DR_ETLS, "%s %s: %s", doing, t->peer, why);
}

static int handshake_error(dr_tls_conn *t, int r, int server)
{
    int rc = io_error(t, r, server ? "TLS handshake with client" : "TLS handshake with");
    if (rc == DR_ETLS || rc == DR_EUNAVAILABLE) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dr_error_msg());
        rc = dr_error_set(DR_ETLS,
                          "%s: the peer refused this side's key or certificate, or this "
                          "side refused the peer's (wrong --psk-file or certificate?)",
                          msg);
    }
    return rc;
}

int dr_tls_accept(dr_tls_listener *l, dr_tls_conf *c, volatile sig_atomic_t *stop,
                  dr_tls_conn **out)
{
    *out = NULL;
    for (;;) {
        if (stop && *stop)
            return dr_error_set(DR_EINTR, "stopped");
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        int n = poll(&p, 1, 200);
        if (n < 0 && errno != EINTR)
            return dr_error_set(DR_EIO, "poll: %s", strerror(errno));
        if (n <= 0)
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char host[64] = "?", peer[80];
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST);
        snprintf(peer, sizeof peer, "%s", host);
        dr_tls_conn *t = NULL;
        int rc = conn_new(fd, c, peer, &t);
        if (rc < 0)
            return rc;
        int r = SSL_accept(t->ssl);
        if (r != 1) {
            rc = handshake_error(t, r, 1);
            dr_tls_close(t);
            return rc;
        }
        *out = t;
        return 0;
    }
}

int dr_tls_connect(const char *addr, dr_tls_conf *c, dr_tls_conn **out)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV},
                    *ai = NULL;
    *out = NULL;
    int rc = split_addr(addr, "--to", host, sizeof host, port, sizeof port);
    if (rc < 0)
        return rc;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0)
        return dr_error_set(DR_EUNAVAILABLE, "cannot resolve '%s': %s", addr, gai_strerror(g));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = dr_error_set(DR_EUNAVAILABLE, "cannot connect to %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    dr_tls_conn *t = NULL;
    if ((rc = conn_new(fd, c, addr, &t)) < 0)
        return rc;
    if (!c->psk_mode) {
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
        else {
            SSL_set1_host(t->ssl, host);
            SSL_set_tlsext_host_name(t->ssl, host);
        }
    }
    int r = SSL_connect(t->ssl);
    if (r != 1) {
        rc = handshake_error(t, r, 0);
        long v = SSL_get_verify_result(t->ssl);
        if (!c->psk_mode && v != X509_V_OK)
            rc = dr_error_set(DR_ETLS, "TLS handshake with %s: server certificate refused: %s",
                              addr, X509_verify_cert_error_string(v));
        dr_tls_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int write_all(dr_tls_conn *t, const void *p, size_t n)
{
    while (n) {
        size_t done = 0;
        int r = SSL_write_ex(t->ssl, p, n, &done);
        if (r != 1)
            return io_error(t, r, "sending to");
        p = (const char *)p + done;
        n -= done;
    }
    return 0;
}

int dr_tls_flush(dr_tls_conn *t)
{
    if (t->broken)
        return dr_error_set(DR_EUNAVAILABLE, "connection to %s is broken", t->peer);
    if (!t->wlen)
        return 0;
    int rc = write_all(t, t->wbuf, t->wlen);
    if (rc < 0)
        return rc;
    if (t->rate) {
        if (!t->rate_t0)
            t->rate_t0 = dr_mono_us();
        t->rate_sent += t->wlen;
        int64_t due = t->rate_t0 + (int64_t)(t->rate_sent * 1000000.0 / (double)t->rate);
        int64_t now = dr_mono_us();
        if (due > now)
            dr_sleep_ms((due - now + 999) / 1000);
    }
    t->wlen = 0;
    return 0;
}

int dr_tls_send2(dr_tls_conn *t, uint8_t type, const void *a, size_t an, const void *b, size_t bn)
{
    size_t n = an + bn;
    if (n > DR_TLS_MAX_FRAME)
        return dr_error_set(DR_EGENERIC, "frame of %zu bytes too large", n);
    unsigned char h[5] = {type, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    const void *parts[3] = {h, a, b};
    size_t lens[3] = {5, an, bn};
    for (int i = 0; i < 3; i++) {
        const char *p = parts[i];
        size_t k = lens[i];
        while (k) {
            if (t->wlen == WBUF) {
                int rc = dr_tls_flush(t);
                if (rc < 0)
                    return rc;
            }
            size_t c = WBUF - t->wlen < k ? WBUF - t->wlen : k;
            memcpy(t->wbuf + t->wlen, p, c);
            t->wlen += c;
            p += c;
            k -= c;
        }
    }
    return 0;
}

int dr_tls_send(dr_tls_conn *t, uint8_t type, const void *p, size_t n)
{
    return dr_tls_send2(t, type, p, n, NULL, 0);
}

static int read_all(dr_tls_conn *t, void *p, size_t n)
{
    while (n) {
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, p, n, &got);
        if (r != 1)
            return io_error(t, r, "receiving from");
        p = (char *)p + got;
        n -= got;
    }
    return 0;
}

int dr_tls_recv(dr_tls_conn *t, uint8_t *type, void *buf, size_t cap, size_t *n)
{
    unsigned char h[5];
    int rc = dr_tls_flush(t);
    if (rc == 0)
        rc = read_all(t, h, 5);
    if (rc < 0)
        return rc;
    size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
    if (len > cap || len > DR_TLS_MAX_FRAME) /* refused unread: the caller closes */
        return dr_error_set(DR_EPROTO, "%s sent a frame of %zu bytes (type %u), more than %zu",
                            t->peer, len, h[0], cap < DR_TLS_MAX_FRAME ? cap : DR_TLS_MAX_FRAME);
    if ((rc = read_all(t, buf, len)) < 0)
        return rc;
    *type = h[0];
    *n = len;
    return 0;
}

void dr_tls_set_rate(dr_tls_conn *t, uint64_t rate)
{
    t->rate = rate;
}

void dr_tls_counters(const dr_tls_conn *t, uint64_t *sent, uint64_t *received)
{
    BIO *w = SSL_get_wbio(t->ssl), *r = SSL_get_rbio(t->ssl);
    *sent = w ? BIO_number_written(w) : 0;
    *received = r ? BIO_number_read(r) : 0;
}

const char *dr_tls_peer(const dr_tls_conn *t)
{
    return t->peer;
}

void dr_tls_close(dr_tls_conn *t)
{
    if (!t)
        return;
    if (!t->broken) {
        dr_tls_flush(t);
        SSL_shutdown(t->ssl);
    }
    SSL_free(t->ssl);
    close(t->fd);
    free(t->wbuf);
    free(t);
}
