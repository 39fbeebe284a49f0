// Test main for integration tests: moves the process into a private network namespace first (when
// permitted), so name lookups and "unreachable" cases never leave the machine; loopback works as usual.
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

namespace {

bool bring_loopback_up() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return false;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  ok = ok && ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  // Must happen before any thread starts: unshare() applies to the calling thread only.
  const bool isolated =
      std::getenv("EDGERELAY_NO_NETNS") == nullptr && ::unshare(CLONE_NEWNET) == 0 && bring_loopback_up();
  ::setenv("EDGERELAY_NETNS", isolated ? "1" : "0", 1);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
