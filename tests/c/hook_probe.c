/* C code linked into the `hook` feature's test binary (build.rs compiles it): plain blocking libc
 * calls, as a C library would make them. With the feature, its `poll` and `read` are hilos's
 * interposed ones, so on a green thread they park only that green thread. */
#include <poll.h>
#include <unistd.h>

/* Waits up to timeout_ms for fd to be readable, then reads up to len bytes into buf.
 * Returns the bytes read, -2 if the wait timed out, -1 on an error (errno says which). */
long hilos_c_probe_poll_then_read(int fd, char *buf, unsigned long len, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN, .revents = 0 };
    int ready = poll(&p, 1, timeout_ms);
    if (ready == 0)
        return -2;
    if (ready < 0)
        return -1;
    return (long)read(fd, buf, len);
}
