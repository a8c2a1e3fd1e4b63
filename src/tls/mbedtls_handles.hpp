// mbedtls_handles.hpp: one RAII owner per mbedTLS struct used by the TLS engine.
// Each owner inits in its constructor and frees in its destructor, nothing more: no I/O,
// no configuration, no error handling. They are neither copyable nor movable because
// mbedTLS structs point at each other (a config at its DRBG, a context at its config),
// so an object must stay where it was initialised; hold one in a unique_ptr to move it.
#pragma once

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_cache.h>
#include <mbedtls/x509_crt.h>

namespace mailferry::tls {

// The shape every owner below shares; each is named by an alias so code and errors say
// SslConfig, not Handle<mbedtls_ssl_config, ...>.
template <class T, void (*Init)(T*), void (*Free)(T*)>
class Handle {
 public:
  Handle() { Init(&value_); }
  ~Handle() { Free(&value_); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&&) = delete;
  Handle& operator=(Handle&&) = delete;

  T* get() { return &value_; }
  const T* get() const { return &value_; }

 private:
  T value_;
};

using SslContext = Handle<mbedtls_ssl_context, mbedtls_ssl_init, mbedtls_ssl_free>;
using SslConfig = Handle<mbedtls_ssl_config, mbedtls_ssl_config_init, mbedtls_ssl_config_free>;
using SslSession = Handle<mbedtls_ssl_session, mbedtls_ssl_session_init, mbedtls_ssl_session_free>;
using SslCache = Handle<mbedtls_ssl_cache_context, mbedtls_ssl_cache_init, mbedtls_ssl_cache_free>;
using X509Crt = Handle<mbedtls_x509_crt, mbedtls_x509_crt_init, mbedtls_x509_crt_free>;
using PkContext = Handle<mbedtls_pk_context, mbedtls_pk_init, mbedtls_pk_free>;
using CtrDrbg = Handle<mbedtls_ctr_drbg_context, mbedtls_ctr_drbg_init, mbedtls_ctr_drbg_free>;
using Entropy = Handle<mbedtls_entropy_context, mbedtls_entropy_init, mbedtls_entropy_free>;

}  // namespace mailferry::tls
