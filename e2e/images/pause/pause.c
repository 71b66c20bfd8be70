/* The lab's pod sandbox ("pause") process: PID 1 of every pod, holding its namespaces.
 * It only waits: exits on SIGINT/SIGTERM, reaps children that get reparented to it.
 * Built static (no libc in the image): gcc -static -Os -s -o pause pause.c */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction sa = {0};
    sa.sa_handler = stop;
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("sigaction");
        return 1;
    }
    sa.sa_handler = reap;
    sa.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0) {
        perror("sigaction");
        return 1;
    }
    if (getpid() != 1) {
        fputs("pause: not PID 1, still waiting\n", stderr);
    }
    for (;;) {
        pause();
    }
}
