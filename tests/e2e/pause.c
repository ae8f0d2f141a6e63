/* The pod sandbox's process on the real node (tests/e2e/images.ts): holds the pod's namespaces, reaps what
 * is orphaned into it, and exits on SIGINT or SIGTERM, as the pause container does. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signal) { (void)signal; _exit(0); }

static void reap(int signal) {
    (void)signal;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}
