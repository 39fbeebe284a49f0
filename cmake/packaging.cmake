# Install rules and the Debian package (docs/operations.md, Install).
#   cmake --install build --prefix /usr     binary, docs, systemd unit, example config
#   cpack --config build/CPackConfig.cmake -G DEB -B OUT   OUT/edgerelay_<version>_amd64.deb
# The unit names /usr/bin/edgerelay and /etc/edgerelay; an install under another prefix gets a copy
# naming that prefix's bin and etc. The config is installed only where none exists, so a reinstall
# from source never overwrites an operator's config (the package marks it a conffile instead).
include(GNUInstallDirs)

set(EDGERELAY_PACKAGE_MAINTAINER "edgerelay maintainers <maintainers@users.noreply.h-seed-ee66d0f1.example>"
    CACHE STRING "Maintainer field of the Debian package")
# Directories the rules create implicitly (lintian wants 0755 whatever the umask).
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

install(TARGETS edgerelay RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
# Evaluated at install time, so docs added later are installed without a reconfigure.
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} FILES_MATCHING PATTERN "*.md")
install(FILES deploy/edgerelay.example.yaml DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(FILES deploy/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The Debian changelog, compressed reproducibly (no name or time stamp in the gzip header).
set(_changelog_gz ${CMAKE_CURRENT_BINARY_DIR}/packaging/changelog.gz)
add_custom_command(OUTPUT ${_changelog_gz}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/packaging
  COMMAND gzip -n -9 -c ${PROJECT_SOURCE_DIR}/deploy/debian/changelog > ${_changelog_gz}
  DEPENDS ${PROJECT_SOURCE_DIR}/deploy/debian/changelog
  COMMENT "Compressing the Debian changelog")
# The manual page, compressed the same way.
set(_man_gz ${CMAKE_CURRENT_BINARY_DIR}/packaging/edgerelay.1.gz)
add_custom_command(OUTPUT ${_man_gz}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/packaging
  COMMAND gzip -n -9 -c ${PROJECT_SOURCE_DIR}/deploy/debian/edgerelay.1 > ${_man_gz}
  DEPENDS ${PROJECT_SOURCE_DIR}/deploy/debian/edgerelay.1
  COMMENT "Compressing the manual page")
add_custom_target(edgerelay_package_docs ALL DEPENDS ${_changelog_gz} ${_man_gz})
install(FILES ${_changelog_gz} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${_man_gz} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The unit and the default config: their destinations depend on the prefix given at install time
# (cpack installs with /usr), so they are computed then, not when configuring. The config goes
# where GNUInstallDirs puts it: /etc for the prefix /usr, PREFIX/etc otherwise.
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(_etc /etc/edgerelay)
  else()
    set(_etc \"\${CMAKE_INSTALL_PREFIX}/etc/edgerelay\")
  endif()
  file(READ \"${PROJECT_SOURCE_DIR}/deploy/edgerelay.service\" _unit)
  string(REPLACE /usr/bin/edgerelay \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}/edgerelay\" _unit \"\${_unit}\")
  string(REPLACE /etc/edgerelay/ \"\${_etc}/\" _unit \"\${_unit}\")
  set(_staged \"${CMAKE_CURRENT_BINARY_DIR}/packaging/unit/edgerelay.service\")
  file(WRITE \"\${_staged}\" \"\${_unit}\")
  file(INSTALL DESTINATION \"\${CMAKE_INSTALL_PREFIX}/lib/systemd/system\" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES \"\${_staged}\")
  if(EXISTS \"\$ENV{DESTDIR}\${_etc}/edgerelay.yaml\")
    message(STATUS \"Keeping: \$ENV{DESTDIR}\${_etc}/edgerelay.yaml (the example is in the docs)\")
  else()
    file(INSTALL DESTINATION \"\${_etc}\" TYPE FILE RENAME edgerelay.yaml
         PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
         FILES \"${PROJECT_SOURCE_DIR}/deploy/edgerelay.example.yaml\")
  endif()
")

# --- Debian package -------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME edgerelay)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "edgerelay")
set(CPACK_PACKAGE_CONTACT "${EDGERELAY_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "SOCKS and HTTP gateway with per-address allow rules")
# The absolute /etc destination needs DESTDIR staging rather than a relocated prefix.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${EDGERELAY_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The extended description; CPack indents it and turns the empty line into " .".
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "edgerelay accepts SOCKS5 (CONNECT and UDP ASSOCIATE), SOCKS4/4a, HTTP CONNECT
and plain HTTP forward proxying on one port, checks every session against
first-match allow rules from a YAML file (default deny, applied to the
addresses actually dialled), and relays both directions with splice(2).

It terminates TLS and mTLS, exposes Prometheus metrics and health endpoints,
writes one JSON access-log line per session, and speaks the 602SQL database
protocol's SOCKS4 firewall dialogue, HTTP tunnel and UDP datagrams.")
# Run-time libraries from dpkg-shlibdeps (dpkg-dev); adduser for the system user postinst makes.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/deploy/debian/conffiles
    ${PROJECT_SOURCE_DIR}/deploy/debian/postinst
    ${PROJECT_SOURCE_DIR}/deploy/debian/prerm
    ${PROJECT_SOURCE_DIR}/deploy/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
