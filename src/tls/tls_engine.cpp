// tls_engine.cpp: the contexts (everything shared, built once) and the engine (one
// mbedtls_ssl_context whose BIO is two std::strings).
#include "tls/tls_engine.hpp"

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_ciphersuites.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "tls/mbedtls_handles.hpp"

namespace mailferry::tls {
namespace {

// Forward-secret AEAD suites only, in server preference order (mbedTLS's server picks by
// its own list unless built with MBEDTLS_SSL_SRV_RESPECT_CLIENT_PREFERENCE, which Debian's
// is not). AES-128-GCM first: AES-NI and PCLMUL make it the cheapest; ChaCha20 last, for
// clients without AES hardware that still list it. Which half applies is decided by the
// certificate's key type: an ECDSA certificate can only do the ECDHE-ECDSA half.
// No CBC, no static RSA or DH key exchange, no PSK, no Camellia (Debian enables all four).
constexpr int kCiphersuites[] = {
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    0,
};

// X25519 first: it is the cheapest ECDHE here, and mbedTLS's server takes the first curve
// of the *client's* list that is also in this one, so our client's order matters upstream.
constexpr mbedtls_ecp_group_id kCurves[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1,
    MBEDTLS_ECP_DP_NONE,
};

// Hashes for handshake signatures: SHA-2 only, so no SHA-1 signed ServerKeyExchange.
constexpr int kSignatureHashes[] = {MBEDTLS_MD_SHA256, MBEDTLS_MD_SHA384, MBEDTLS_MD_SHA512,
                                    MBEDTLS_MD_NONE};

constexpr const char* kSystemBundle = "/etc/ssl/certs/ca-certificates.crt";
constexpr const char* kSystemDirectory = "/etc/ssl/certs";

// Bounds the client's session store: one entry per upstream host name, and a relay
// talks to a handful; the bound only stops a misconfiguration from growing it forever.
constexpr std::size_t kMaxClientSessions = 64;

// A server session cache entry is a few hundred bytes; an hour covers a client that
// reconnects per message or per batch, which is the case resumption is for.
constexpr int kServerCacheEntries = 1000;
constexpr int kServerCacheSeconds = 3600;

std::string mbedtls_text(int rc) {
  char buf[256];
  mbedtls_strerror(rc, buf, sizeof buf);
  return buf;
}

struct FileBytes {
  std::string data;
  int sys_errno = 0;
};

// Reads a whole (small) file. Plain stdio rather than mbedtls_*_parse_file so a missing
// file says "No such file or directory" instead of "PK - Read/write of file failed".
FileBytes read_file(const std::string& path) {
  FileBytes r;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    r.sys_errno = errno;
    return r;
  }
  char buf[16384];
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, f);
    r.data.append(buf, n);
    if (n < sizeof buf) break;
  }
  if (std::ferror(f)) r.sys_errno = errno != 0 ? errno : EIO;
  std::fclose(f);
  return r;
}

// mbedtls_x509_crt_parse and mbedtls_pk_parse_key want a PEM buffer's terminating NUL
// counted in its length, and a DER buffer without it (as mbedtls_pk_load_file does).
std::size_t parse_length(const std::string& data) {
  return data.size() + (data.find("-----BEGIN ") != std::string::npos ? 1 : 0);
}

const unsigned char* bytes(const std::string& data) {
  return reinterpret_cast<const unsigned char*>(data.c_str());
}

int count_certificates(const mbedtls_x509_crt* crt) {
  int n = 0;
  for (; crt != nullptr && crt->version != 0; crt = crt->next) ++n;
  return n;
}

Error file_error(const std::string& file, const std::string& what, const std::string& why,
                 const std::string& key, int sys_errno = 0) {
  return Error{file + ": " + what + ": " + why + " (check " + key + ")", sys_errno};
}

Result<void> seed(CtrDrbg& drbg, Entropy& entropy, std::string_view personalisation) {
  int rc = mbedtls_ctr_drbg_seed(drbg.get(), mbedtls_entropy_func, entropy.get(),
                                 reinterpret_cast<const unsigned char*>(personalisation.data()),
                                 personalisation.size());
  if (rc != 0) return Error{"cannot seed the TLS random generator: " + mbedtls_text(rc)};
  return {};
}

// The policy both sides share. Everything set here is read by every handshake of every
// engine built on this config, which is why engines are cheap.
Result<void> configure(SslConfig& config, int endpoint, CtrDrbg& drbg) {
  int rc = mbedtls_ssl_config_defaults(config.get(), endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                       MBEDTLS_SSL_PRESET_DEFAULT);
  if (rc != 0) return Error{"cannot set up the TLS configuration: " + mbedtls_text(rc)};
  mbedtls_ssl_conf_rng(config.get(), mbedtls_ctr_drbg_random, drbg.get());
  // Debian's build still has TLS 1.0 and 1.1 compiled in; refuse them here.
  mbedtls_ssl_conf_min_version(config.get(), MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_max_version(config.get(), MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
  mbedtls_ssl_conf_ciphersuites(config.get(), kCiphersuites);
  mbedtls_ssl_conf_curves(config.get(), kCurves);
  mbedtls_ssl_conf_sig_hashes(config.get(), kSignatureHashes);
  // Off is mbedTLS's default; said again because renegotiation is what would let a peer
  // restart the handshake under data the caller already trusts.
  mbedtls_ssl_conf_renegotiation(config.get(), MBEDTLS_SSL_RENEGOTIATION_DISABLED);
  return {};
}

// "The certificate is not correctly signed by the trusted CA\n..." → one line, lower case.
std::string verify_text(std::uint32_t flags) {
  char buf[1024];
  int n = mbedtls_x509_crt_verify_info(buf, sizeof buf, "", flags);
  std::string out;
  std::string_view all(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!all.empty()) {
    auto end = all.find('\n');
    std::string line(all.substr(0, end));
    all = end == std::string_view::npos ? std::string_view{} : all.substr(end + 1);
    if (line.empty()) continue;
    line[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(line[0])));
    if (!out.empty()) out += "; ";
    out += line;
  }
  if (out.empty()) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "%08x", static_cast<unsigned>(flags));
    out = std::string("unknown reason (flags 0x") + hex + ")";
  }
  return out;
}

std::string handshake_failure(int rc) {
  switch (rc) {
    case MBEDTLS_ERR_SSL_CONN_EOF:
      return "handshake failed: the peer closed the connection";
    case MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN:
    case MBEDTLS_ERR_SSL_NO_USABLE_CIPHERSUITE:
      return "handshake failed: no cipher suite in common (mailferry accepts only ECDHE with "
             "AES-GCM or ChaCha20-Poly1305): " + mbedtls_text(rc);
    case MBEDTLS_ERR_SSL_BAD_HS_PROTOCOL_VERSION:
      return "handshake failed: the peer does not offer TLS 1.2: " + mbedtls_text(rc);
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
      return "handshake failed: the peer refused the handshake with a fatal alert";
    default:
      return "handshake failed: " + mbedtls_text(rc);
  }
}

}  // namespace

// ---------------------------------------------------------------------------- ServerContext

// Declaration order is destruction order reversed: the config (which points at the rest)
// goes first, the entropy source (which the DRBG points at) last.
struct ServerContext::Impl {
  Entropy entropy;
  CtrDrbg drbg;
  X509Crt chain;
  PkContext key;
  SslCache cache;
  SslConfig config;
};

ServerContext::ServerContext() : impl_(std::make_unique<Impl>()) {}
ServerContext::~ServerContext() = default;

Result<std::shared_ptr<ServerContext>> ServerContext::load(const std::string& cert_file,
                                                           const std::string& key_file) {
  const std::string cert_key = "[tls] cert_file";
  const std::string key_key = "[tls] key_file";
  std::shared_ptr<ServerContext> context(new ServerContext());
  Impl& s = *context->impl_;

  auto cert = read_file(cert_file);
  if (cert.sys_errno != 0)
    return file_error(cert_file, "cannot read certificate", std::strerror(cert.sys_errno), cert_key,
                      cert.sys_errno);
  int rc = mbedtls_x509_crt_parse(s.chain.get(), bytes(cert.data), parse_length(cert.data));
  if (rc < 0)
    return file_error(cert_file, "cannot parse certificate", mbedtls_text(rc),
                      cert_key + ": a PEM chain, server certificate first");
  if (rc > 0)
    return file_error(cert_file, "cannot parse certificate",
                      std::to_string(rc) + " certificate(s) in the chain are not valid X.509", cert_key);
  mbedtls_x509_crt* leaf = s.chain.get();

  // mbedTLS checks these at every handshake and then fails each one with "no suitable
  // certificate"; a config error at start-up says the same thing once, usefully.
  if (mbedtls_x509_crt_check_key_usage(leaf, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0)
    return file_error(cert_file, "unusable certificate",
                      "its keyUsage lacks digitalSignature, which ECDHE key exchange needs", cert_key);
  if (mbedtls_x509_crt_check_extended_key_usage(leaf, MBEDTLS_OID_SERVER_AUTH,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0)
    return file_error(cert_file, "unusable certificate",
                      "its extendedKeyUsage does not include serverAuth", cert_key);

  auto key = read_file(key_file);
  if (key.sys_errno != 0)
    return file_error(key_file, "cannot read private key", std::strerror(key.sys_errno), key_key,
                      key.sys_errno);
  rc = mbedtls_pk_parse_key(s.key.get(), bytes(key.data), parse_length(key.data), nullptr, 0);
  // The key bytes now live inside the PkContext only.
  mbedtls_platform_zeroize(key.data.data(), key.data.size());
  if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED)
    return file_error(key_file, "cannot use private key",
                      "it is encrypted; mailferry needs an unencrypted key readable only by it", key_key);
  if (rc != 0) return file_error(key_file, "cannot parse private key", mbedtls_text(rc), key_key);
  if (mbedtls_pk_check_pair(&leaf->pk, s.key.get()) != 0)
    return file_error(key_file, "private key does not match the certificate",
                      "it is not the key of the first certificate in " + cert_file, key_key);

  if (auto r = seed(s.drbg, s.entropy, "mailferry tls server"); !r) return r.error();
  if (auto r = configure(s.config, MBEDTLS_SSL_IS_SERVER, s.drbg); !r) return r.error();
  // The chain after the leaf is sent as is; the client needs the intermediates.
  rc = mbedtls_ssl_conf_own_cert(s.config.get(), leaf, s.key.get());
  if (rc != 0) return file_error(cert_file, "cannot use certificate", mbedtls_text(rc), cert_key);

  // Session-ID resumption: a returning client skips the signature and the key exchange,
  // the two costs that bound handshakes per second. No session tickets: they would need
  // a ticket key to rotate and protect, for clients that resume by ID just as well.
  mbedtls_ssl_cache_set_max_entries(s.cache.get(), kServerCacheEntries);
  mbedtls_ssl_cache_set_timeout(s.cache.get(), kServerCacheSeconds);
  mbedtls_ssl_conf_session_cache(s.config.get(), s.cache.get(), mbedtls_ssl_cache_get,
                                 mbedtls_ssl_cache_set);
  return context;
}

// ---------------------------------------------------------------------------- ClientContext

struct ClientContext::Impl {
  Entropy entropy;
  CtrDrbg drbg;
  X509Crt trust;
  SslConfig config;

  std::mutex mutex;
  std::map<std::string, std::unique_ptr<SslSession>> sessions;

  // A session is only ever stored after a handshake that verified `server_name`, and only
  // offered to the same name, so resuming never skips a check that would have failed.
  void offer_session(mbedtls_ssl_context* ssl, const std::string& server_name) {
    std::lock_guard lock(mutex);
    auto it = sessions.find(server_name);
    if (it != sessions.end()) (void)mbedtls_ssl_set_session(ssl, it->second->get());
  }
  void remember_session(const mbedtls_ssl_context* ssl, const std::string& server_name) {
    auto session = std::make_unique<SslSession>();
    if (mbedtls_ssl_get_session(ssl, session->get()) != 0) return;
    std::lock_guard lock(mutex);
    if (sessions.size() >= kMaxClientSessions && !sessions.contains(server_name))
      sessions.erase(sessions.begin());
    sessions[server_name] = std::move(session);
  }
  void forget_session(const std::string& server_name) {
    std::lock_guard lock(mutex);
    sessions.erase(server_name);
  }
};

ClientContext::ClientContext() : impl_(std::make_unique<Impl>()) {}
ClientContext::~ClientContext() = default;

void ClientContext::forget_session(const std::string& server_name) { impl_->forget_session(server_name); }

Result<std::shared_ptr<ClientContext>> ClientContext::create(const std::string& ca_file) {
  std::shared_ptr<ClientContext> context(new ClientContext());
  Impl& s = *context->impl_;

  if (ca_file.empty()) {
    const std::string hint = "package ca-certificates, or set [upstream] ca_file";
    auto bundle = read_file(kSystemBundle);
    if (bundle.sys_errno == 0) {
      // Lenient: one certificate mbedTLS cannot parse must not cost the other hundred.
      (void)mbedtls_x509_crt_parse(s.trust.get(), bytes(bundle.data), parse_length(bundle.data));
      if (count_certificates(s.trust.get()) == 0)
        return file_error(kSystemBundle, "no usable CA certificate", "none could be parsed", hint);
    } else if (bundle.sys_errno == ENOENT) {
      (void)mbedtls_x509_crt_parse_path(s.trust.get(), kSystemDirectory);
      if (count_certificates(s.trust.get()) == 0)
        return file_error(kSystemDirectory, "no usable CA certificate",
                          std::string("neither ") + kSystemBundle + " nor a certificate in this directory",
                          hint);
    } else {
      return file_error(kSystemBundle, "cannot read the system trust store",
                        std::strerror(bundle.sys_errno), hint, bundle.sys_errno);
    }
  } else {
    const std::string key = "[upstream] ca_file";
    auto file = read_file(ca_file);
    if (file.sys_errno != 0)
      return file_error(ca_file, "cannot read CA certificates", std::strerror(file.sys_errno), key,
                        file.sys_errno);
    // Strict: a file the user named should mean exactly what it says.
    int rc = mbedtls_x509_crt_parse(s.trust.get(), bytes(file.data), parse_length(file.data));
    if (rc < 0) return file_error(ca_file, "cannot parse CA certificates", mbedtls_text(rc), key);
    if (rc > 0)
      return file_error(ca_file, "cannot parse CA certificates",
                        std::to_string(rc) + " certificate(s) are not valid X.509", key);
  }

  if (auto r = seed(s.drbg, s.entropy, "mailferry tls client"); !r) return r.error();
  if (auto r = configure(s.config, MBEDTLS_SSL_IS_CLIENT, s.drbg); !r) return r.error();
  mbedtls_ssl_conf_authmode(s.config.get(), MBEDTLS_SSL_VERIFY_REQUIRED);
  mbedtls_ssl_conf_ca_chain(s.config.get(), s.trust.get(), nullptr);
  return context;
}

// ---------------------------------------------------------------------------- TlsEngine

struct TlsEngine::State {
  // The contexts come first so they outlive `ssl`, which points at their config.
  std::shared_ptr<ServerContext> server;
  std::shared_ptr<ClientContext> client;
  std::string server_name;
  SslContext ssl;

  // The in-memory BIO: `in` is consumed from `in_pos`, `out` is appended to.
  std::string in;
  std::size_t in_pos = 0;
  bool in_eof = false;
  std::string out;

  Status status = Status::handshaking;
  bool handshake_done = false;
  bool verification_failed = false;
  std::string error;

  static int bio_send(void* self, const unsigned char* buf, std::size_t len) {
    // Appending never blocks, so mbedTLS never sees WANT_WRITE and never holds a
    // half-sent record: everything it produced is in `out` when the call returns.
    static_cast<State*>(self)->out.append(reinterpret_cast<const char*>(buf), len);
    return static_cast<int>(len);
  }

  static int bio_recv(void* self, unsigned char* buf, std::size_t len) {
    auto* s = static_cast<State*>(self);
    std::size_t available = s->in.size() - s->in_pos;
    if (available == 0) return s->in_eof ? 0 : MBEDTLS_ERR_SSL_WANT_READ;   // 0 = EOF to mbedTLS
    std::size_t n = std::min(len, available);
    std::memcpy(buf, s->in.data() + s->in_pos, n);
    s->in_pos += n;
    if (s->in_pos == s->in.size()) {
      s->in.clear();
      s->in_pos = 0;
    }
    return static_cast<int>(n);
  }

  void fail(std::string message) {
    status = Status::failed;
    error = std::move(message);
    // A session must not outlive a connection that went wrong on its way.
    if (client) client->impl_->forget_session(server_name);
  }

  void fail_handshake(int rc) {
    std::uint32_t flags = mbedtls_ssl_get_verify_result(ssl.get());
    if (client && (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED || (flags != 0 && flags != UINT32_MAX))) {
      verification_failed = true;
      fail("certificate verification failed for " + server_name + ": " + verify_text(flags));
      return;
    }
    fail(handshake_failure(rc));
  }
};

TlsEngine::TlsEngine(std::unique_ptr<State> state) : s_(std::move(state)) {}
TlsEngine::~TlsEngine() = default;

std::unique_ptr<TlsEngine> TlsEngine::server(std::shared_ptr<ServerContext> context) {
  auto s = std::make_unique<State>();
  s->server = std::move(context);
  int rc = mbedtls_ssl_setup(s->ssl.get(), s->server->impl_->config.get());
  if (rc != 0) s->fail("TLS setup failed: " + mbedtls_text(rc));
  mbedtls_ssl_set_bio(s->ssl.get(), s.get(), &State::bio_send, &State::bio_recv, nullptr);
  return std::unique_ptr<TlsEngine>(new TlsEngine(std::move(s)));
}

std::unique_ptr<TlsEngine> TlsEngine::client(std::shared_ptr<ClientContext> context,
                                             const std::string& server_name) {
  auto s = std::make_unique<State>();
  s->client = std::move(context);
  s->server_name = server_name;
  int rc = mbedtls_ssl_setup(s->ssl.get(), s->client->impl_->config.get());
  mbedtls_ssl_set_bio(s->ssl.get(), s.get(), &State::bio_send, &State::bio_recv, nullptr);
  if (rc != 0) {
    s->fail("TLS setup failed: " + mbedtls_text(rc));
  } else if (server_name.empty()) {
    // mbedTLS 2.x would verify the chain and skip the name: refuse instead.
    s->fail("no server name to verify the certificate against");
  } else if ((rc = mbedtls_ssl_set_hostname(s->ssl.get(), server_name.c_str())) != 0) {
    s->fail("cannot use server name \"" + server_name + "\": " + mbedtls_text(rc));
  } else {
    s->client->impl_->offer_session(s->ssl.get(), server_name);
  }
  return std::unique_ptr<TlsEngine>(new TlsEngine(std::move(s)));
}

void TlsEngine::feed_ciphertext(std::span<const char> bytes) {
  // Reclaim the consumed front before growing, so a long connection's buffer stays small.
  if (s_->in_pos > 0 && s_->in_pos >= s_->in.size() / 2) {
    s_->in.erase(0, s_->in_pos);
    s_->in_pos = 0;
  }
  s_->in.append(bytes.data(), bytes.size());
}

void TlsEngine::feed_eof() { s_->in_eof = true; }

std::string TlsEngine::take_ciphertext() { return std::exchange(s_->out, std::string{}); }

TlsEngine::Status TlsEngine::advance() {
  if (s_->status != Status::handshaking) return s_->status;
  int rc = mbedtls_ssl_handshake(s_->ssl.get());
  if (rc == 0) {
    s_->status = Status::established;
    s_->handshake_done = true;
    if (s_->client) s_->client->impl_->remember_session(s_->ssl.get(), s_->server_name);
  } else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
    s_->fail_handshake(rc);
  }
  return s_->status;
}

TlsEngine::Status TlsEngine::status() const { return s_->status; }

Result<std::size_t> TlsEngine::read_plaintext(std::span<char> out) {
  switch (s_->status) {
    case Status::failed:
      return Error{s_->error};
    case Status::closed:
      return std::size_t{0};
    case Status::handshaking:
      if (advance() == Status::failed) return Error{s_->error};
      if (s_->status != Status::established) return std::size_t{0};
      break;
    case Status::established:
      break;
  }
  // A zero-length read would come back as 0, which mbedTLS also uses for EOF.
  if (out.empty()) return std::size_t{0};

  int rc = mbedtls_ssl_read(s_->ssl.get(), reinterpret_cast<unsigned char*>(out.data()), out.size());
  if (rc > 0) return static_cast<std::size_t>(rc);
  if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return std::size_t{0};
  if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
    // Answer in kind (RFC 5246 §7.2.1); the caller sends it if the socket is still open.
    (void)mbedtls_ssl_close_notify(s_->ssl.get());
    s_->status = Status::closed;
    return std::size_t{0};
  }
  if (rc == 0 || rc == MBEDTLS_ERR_SSL_CONN_EOF) {
    s_->status = Status::closed;
    s_->error = "the peer closed the connection without close_notify";
    return std::size_t{0};
  }
  s_->fail("TLS read failed: " + mbedtls_text(rc));
  return Error{s_->error};
}

Result<void> TlsEngine::write_plaintext(std::string_view bytes) {
  switch (s_->status) {
    case Status::handshaking:
      return Error{"cannot send before the TLS handshake has finished"};
    case Status::closed:
      return Error{"cannot send: the TLS connection is closed"};
    case Status::failed:
      return Error{s_->error};
    case Status::established:
      break;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t left = bytes.size();
  int stalls = 0;
  while (left > 0) {
    // At most one record (16 KiB) per call: partial writes are the normal case.
    int rc = mbedtls_ssl_write(s_->ssl.get(), p, left);
    if (rc > 0) {
      p += rc;
      left -= static_cast<std::size_t>(rc);
      stalls = 0;
    } else if ((rc == MBEDTLS_ERR_SSL_WANT_WRITE || rc == MBEDTLS_ERR_SSL_WANT_READ || rc == 0) &&
               ++stalls < 3) {
      // Cannot happen with this BIO; retried with the same arguments, as mbedTLS requires,
      // and bounded so a surprise is an error rather than a spin.
      continue;
    } else {
      s_->fail("TLS write failed: " + (rc < 0 ? mbedtls_text(rc) : std::string("no progress")));
      return Error{s_->error};
    }
  }
  return {};
}

void TlsEngine::close() {
  if (s_->status == Status::failed || s_->status == Status::closed) return;
  // Sends nothing before the handshake is over; mbedTLS knows when that is.
  (void)mbedtls_ssl_close_notify(s_->ssl.get());
  s_->status = Status::closed;
}

std::string TlsEngine::error() const { return s_->error; }
bool TlsEngine::verification_failed() const { return s_->verification_failed; }

std::string TlsEngine::version() const {
  return s_->handshake_done ? mbedtls_ssl_get_version(s_->ssl.get()) : "";
}

std::string TlsEngine::cipher() const {
  if (!s_->handshake_done) return "";
  // mbedTLS spells the IANA names with dashes: TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256.
  std::string name = mbedtls_ssl_get_ciphersuite(s_->ssl.get());
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

}  // namespace mailferry::tls
