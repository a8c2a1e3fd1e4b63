// notify.hpp: the service manager's readiness protocol (sd_notify(3)) without libsystemd: one
// datagram with "KEY=VALUE" lines to the socket named by $NOTIFY_SOCKET. Nothing happens when
// the variable is unset (not started by systemd with Type=notify).
#pragma once

#include <string_view>

namespace mailferry::daemon {

// Sends `state` ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."); failures are ignored:
// a service manager that went away must not stop the relay.
void notify_service_manager(std::string_view state);

// "RELOADING=1" with the MONOTONIC_USEC= that systemd's Type=notify-reload asks for.
void notify_reloading();

}  // namespace mailferry::daemon
