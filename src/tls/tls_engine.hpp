// tls_engine.hpp: TLS 1.2 on mbedTLS as a byte transformer — ciphertext in and out,
// plaintext in and out, handshake state — for net::Stream to drive over a socket.
// Never touches a socket, a timer or a thread, and never blocks: the caller moves bytes
// between the engine and the network and decides when to wait. It never looks at the
// plaintext either: discarding bytes that arrived before STARTTLS (RFC 3207) is the caller's job.
//
// Policy, the same on both sides: TLS 1.2 only (all Debian's mbedTLS 2.28 has), ECDHE with
// AES-GCM or ChaCha20-Poly1305 only (forward secret, AEAD), curves X25519, P-256, P-384,
// renegotiation off. Everything shared lives in a context built once; an engine is one
// mbedtls_ssl_context plus two buffers.
//
// Driving an engine from a stream:
//   - after EVERY call, send take_ciphertext() if it is not empty (handshake records,
//     alerts and close_notify appear as a side effect of advance/read/close too);
//   - bytes from the socket go to feed_ciphertext(); a clean TCP EOF goes to feed_eof();
//   - while status() is handshaking call advance() after each feed; once it returns
//     established, call read_plaintext() at once, because the peer's first records may
//     already be buffered and no further network input will announce them;
//   - read_plaintext() returns only one record's worth at a time: loop until it returns 0.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "mailferry/base/result.hpp"

namespace mailferry::tls {

class TlsEngine;

// What a listener needs: its certificate chain and key, the shared config and random
// generator, and a session cache so returning clients resume without a signature.
// Immutable once loaded, so a SIGHUP reload builds a new one and new connections take it.
class ServerContext {
 public:
  // Errors are one line naming the file and the config key, e.g.
  // "/etc/mailferry/cert.pem: cannot read certificate: No such file or directory (check [tls] cert_file)".
  static Result<std::shared_ptr<ServerContext>> load(const std::string& cert_file,
                                                     const std::string& key_file);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

 private:
  friend class TlsEngine;
  struct Impl;
  ServerContext();
  std::unique_ptr<Impl> impl_;
};

// What upstream connections need: the trust anchors, the shared config and random
// generator, and the last session per server name so the next connection resumes.
// Safe to share between threads (the session store has its own lock).
class ClientContext {
 public:
  // Empty `ca_file`: the system trust store, /etc/ssl/certs/ca-certificates.crt, else
  // every certificate in /etc/ssl/certs.
  static Result<std::shared_ptr<ClientContext>> create(const std::string& ca_file);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // Next connection to `server_name` does a full handshake (also done after any failure).
  void forget_session(const std::string& server_name);

 private:
  friend class TlsEngine;
  struct Impl;
  ClientContext();
  std::unique_ptr<Impl> impl_;
};

class TlsEngine {
 public:
  enum class Status { handshaking, established, closed, failed };

  static std::unique_ptr<TlsEngine> server(std::shared_ptr<ServerContext> context);
  // Sends `server_name` as SNI and requires the certificate to be valid for it. An empty
  // name makes a failed engine: a client that verifies nothing is never built.
  static std::unique_ptr<TlsEngine> client(std::shared_ptr<ClientContext> context,
                                           const std::string& server_name);
  ~TlsEngine();
  // One live TLS session: never copied; handed around as the unique_ptr the factories return.
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // --- network side
  void feed_ciphertext(std::span<const char> bytes);
  // The peer closed TCP. During the handshake → failed; afterwards → closed (error() then
  // says whether close_notify was missing; SMTP's own framing makes truncation harmless).
  void feed_eof();
  std::string take_ciphertext();

  // --- handshake
  // Runs the handshake as far as the buffered input allows. Idempotent once it has ended.
  Status advance();
  Status status() const;

  // --- application side
  // Bytes decrypted into `out`; 0 = nothing available yet (need more input) or the
  // connection is closed (check status()). An error means status() is failed.
  Result<std::size_t> read_plaintext(std::span<char> out);
  // Encrypts everything into the outgoing buffer (the in-memory BIO never blocks).
  // Only when established.
  Result<void> write_plaintext(std::string_view bytes);
  // Queues close_notify; status becomes closed. Send take_ciphertext() before closing TCP.
  void close();

  // --- what happened
  // One line, empty while nothing went wrong, e.g. "certificate verification failed for
  // smtp.example.com: the certificate is not correctly signed by the trusted CA".
  std::string error() const;
  bool verification_failed() const;
  std::string version() const;   // "TLSv1.2" once established, else ""
  std::string cipher() const;    // IANA name, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"; "" before

 private:
  struct State;
  explicit TlsEngine(std::unique_ptr<State> state);
  std::unique_ptr<State> s_;
};

}  // namespace mailferry::tls
