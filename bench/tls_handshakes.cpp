// bench_tls_handshakes: TLS handshakes per second on one core, in memory (no sockets), for an
// ECDSA P-256 and an RSA-2048 server certificate, full and resumed. Client and server run
// in one thread; the server's share is measured with CLOCK_THREAD_CPUTIME_ID around every
// server call (engine creation included), so "server CPU" is what a listener core pays.
// A benchmark, never a test: figures depend on the machine. Needs the openssl CLI.
//
//   ninja -C build bench/bench_tls_handshakes && build/bench/bench_tls_handshakes [seconds]
#include <stdlib.h>
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "tls/tls_engine.hpp"

namespace {

using mailferry::tls::ClientContext;
using mailferry::tls::ServerContext;
using mailferry::tls::TlsEngine;

constexpr const char* kOpensslConfig = R"(
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
)";

bool run(const std::string& command) {
  std::string quiet = command + " >/dev/null 2>&1";
  if (std::system(quiet.c_str()) == 0) return true;
  std::fprintf(stderr, "bench_tls_handshakes: failed: %s\n", command.c_str());
  return false;
}

bool make_certificates(const std::string& dir) {
  std::ofstream(dir + "/openssl.cnf") << kOpensslConfig;
  const std::string cnf = " -config " + dir + "/openssl.cnf";
  const std::string ext = " -extfile " + dir + "/openssl.cnf -extensions server";
  auto p = [&](const std::string& name) { return " " + dir + "/" + name; };
  return run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out" + p("ca.key")) &&
         run("openssl req -x509 -new -key" + p("ca.key") + " -subj /CN=bench-CA -days 2" + cnf +
             " -extensions ca -out" + p("ca.pem")) &&
         run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out" + p("ecdsa.key")) &&
         run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out" + p("rsa.key")) &&
         run("openssl req -new -key" + p("ecdsa.key") + " -subj /CN=localhost" + cnf + " -out" + p("ecdsa.csr")) &&
         run("openssl req -new -key" + p("rsa.key") + " -subj /CN=localhost" + cnf + " -out" + p("rsa.csr")) &&
         run("openssl x509 -req -in" + p("ecdsa.csr") + " -CA" + p("ca.pem") + " -CAkey" + p("ca.key") +
             " -set_serial 1 -days 2" + ext + " -out" + p("ecdsa.pem")) &&
         run("openssl x509 -req -in" + p("rsa.csr") + " -CA" + p("ca.pem") + " -CAkey" + p("ca.key") +
             " -set_serial 2 -days 2" + ext + " -out" + p("rsa.pem"));
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Adds the thread CPU time spent in `f` to `total`.
template <class F>
auto timed(double& total, F&& f) {
  double start = thread_cpu_seconds();
  struct Stop {
    double& total;
    double start;
    ~Stop() { total += thread_cpu_seconds() - start; }
  } stop{total, start};
  return f();
}

struct Figures {
  long handshakes = 0;
  double wall = 0, server_cpu = 0, client_cpu = 0;
  std::string cipher;
};

// One handshake between a fresh client engine and a fresh server engine.
bool handshake(const std::shared_ptr<ServerContext>& server_ctx, const std::shared_ptr<ClientContext>& client_ctx,
               Figures& f) {
  auto server = timed(f.server_cpu, [&] { return TlsEngine::server(server_ctx); });
  auto client = timed(f.client_cpu, [&] { return TlsEngine::client(client_ctx, "localhost"); });
  for (int round = 0; round < 20; ++round) {
    std::string to_server = timed(f.client_cpu, [&] {
      client->advance();
      return client->take_ciphertext();
    });
    std::string to_client = timed(f.server_cpu, [&] {
      server->feed_ciphertext(to_server);
      server->advance();
      return server->take_ciphertext();
    });
    timed(f.client_cpu, [&] {
      client->feed_ciphertext(to_client);
      return client->advance();
    });
    if (to_server.empty() && to_client.empty()) break;
  }
  if (client->status() != TlsEngine::Status::established || server->status() != TlsEngine::Status::established) {
    std::fprintf(stderr, "bench_tls_handshakes: handshake failed: client: %s; server: %s\n",
                 client->error().c_str(), server->error().c_str());
    return false;
  }
  f.cipher = server->cipher();
  timed(f.server_cpu, [&] {
    server.reset();
    return 0;
  });
  return true;
}

bool measure(const char* label, const std::string& dir, const std::string& cert, bool resume, double seconds) {
  auto server_ctx = ServerContext::load(dir + "/" + cert + ".pem", dir + "/" + cert + ".key");
  auto client_ctx = ClientContext::create(dir + "/ca.pem");
  if (!server_ctx || !client_ctx) {
    std::fprintf(stderr, "bench_tls_handshakes: %s\n",
                 (!server_ctx ? server_ctx.error() : client_ctx.error()).message.c_str());
    return false;
  }
  Figures f;
  // One untimed handshake: warms caches and, when resuming, leaves a session to resume.
  if (!handshake(*server_ctx, *client_ctx, f)) return false;
  f = Figures{};
  auto start = std::chrono::steady_clock::now();
  do {
    if (!resume) (*client_ctx)->forget_session("localhost");
    if (!handshake(*server_ctx, *client_ctx, f)) return false;
    ++f.handshakes;
    f.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (f.wall < seconds);

  double server_ms = f.server_cpu / static_cast<double>(f.handshakes) * 1e3;
  double client_ms = f.client_cpu / static_cast<double>(f.handshakes) * 1e3;
  std::printf("%-22s %-8s %6ld hs in %4.1f s  %7.0f hs/s both sides  server %6.3f ms CPU/hs = %6.0f hs/s/core"
              "  client %6.3f ms  %s\n",
              label, resume ? "resumed" : "full", f.handshakes, f.wall, static_cast<double>(f.handshakes) / f.wall,
              server_ms, 1e3 / server_ms, client_ms, f.cipher.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  if (seconds <= 0) seconds = 3.0;
  char tmpl[] = "/tmp/mailferry-bench-tls-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    std::perror("bench_tls_handshakes: mkdtemp");
    return 1;
  }
  const std::string dir = tmpl;
  bool ok = make_certificates(dir) &&
            measure("ECDSA P-256 + X25519", dir, "ecdsa", false, seconds) &&
            measure("ECDSA P-256 + X25519", dir, "ecdsa", true, seconds) &&
            measure("RSA-2048 + X25519", dir, "rsa", false, seconds) &&
            measure("RSA-2048 + X25519", dir, "rsa", true, seconds);
  std::filesystem::remove_all(dir);
  return ok ? 0 : 1;
}
