/* llhttp.h for the SwiftPM build: Debian's llhttp 8.1 header (through the
 * symlink ../node-llhttp/llhttp.h), or an error that names the Debian
 * package to install. A package that depends on Vigil builds these sources
 * without running Vigil's Makefile (which installs the packages itself), so
 * without these checks its first error would be a missing header inside the
 * C core. The core's SwiftPM build reaches this file before <uv.h>
 * (vigil_internal.h), so libuv is checked here too. The C library's own
 * build (mk/c.mk) reads Debian's directory directly, never this file. */
#ifndef VIGIL_CLLHTTP_LLHTTP_H
#define VIGIL_CLLHTTP_LLHTTP_H

#if !__has_include("../node-llhttp/llhttp.h")
#error "Vigil needs llhttp 8.1 from Debian's node-llhttp package, which is not installed: apt-get install node-llhttp"
#endif
#if !__has_include(<uv.h>)
#error "Vigil needs libuv's headers from Debian's libuv1-dev package, which is not installed: apt-get install libuv1-dev"
#endif

/* Included even when missing: its fatal error stops the compilation right
 * after the message above, instead of a cascade about llhttp's types. */
#include "../node-llhttp/llhttp.h"

#endif
