// Host emulation of lwIP's BSD socket API (lwip/sockets.h with LWIP_COMPAT_SOCKETS, as ESP-IDF builds it): the host's
// own POSIX sockets. Everything the component uses (socket, bind, listen, accept, select, recv, send, setsockopt with
// SO_RCVTIMEO / SO_SNDTIMEO / SO_REUSEADDR / TCP_NODELAY, shutdown, close) has the same names and meaning in lwIP.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
