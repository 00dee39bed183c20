/* libuv from Debian's libuv1-dev (found through pkg-config, Package.swift);
 * without it, an error that names the package rather than a missing file. */
#if !__has_include(<uv.h>)
#error "Vigil needs libuv's headers from Debian's libuv1-dev package, which is not installed: apt-get install libuv1-dev"
#else
#include <uv.h>
#endif
