/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Running hooks, health checks and the reboot command: see run.h. */
#include "run.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_program(const char *what, const char *const *argv, int shell, const char *const *env, unsigned timeout_s,
		struct slotsync_error *err)
{
	double start = clock_now_s();
	int status = 0, term_sent = 0;
	pid_t pid, w;

	pid = fork();
	if (pid < 0)
		return slotsync_error_set_errno(err, -errno, "cannot start %s", what);
	if (pid == 0) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		sigset_t none;
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)env[i]);
		if (shell)
			execl("/bin/sh", "sh", "-c", argv[0], (char *)NULL);
		else
			execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (;;) {
		w = waitpid(pid, &status, timeout_s ? WNOHANG : 0);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return slotsync_error_set_errno(err, -errno, "cannot wait for %s", what);
		if (timeout_s) {
			double t = clock_now_s() - start;
			if (!term_sent && t > timeout_s) {
				kill(-pid, SIGTERM);
				kill(pid, SIGTERM);
				term_sent = 1;
			} else if (term_sent && t > timeout_s + 5.0) {
				kill(-pid, SIGKILL);
				kill(pid, SIGKILL);
			}
			usleep(20000);
		}
	}
	if (term_sent)
		return slotsync_error_set(err, -ETIMEDOUT, "%s did not finish within %u s and was stopped", what, timeout_s);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return slotsync_error_set(err, -ECHILD, "%s could not be run (exit 127: not found or not executable)", what);
	if (WIFEXITED(status))
		return slotsync_error_set(err, -ECHILD, "%s failed (exit %d)", what, WEXITSTATUS(status));
	return slotsync_error_set(err, -ECHILD, "%s was killed by signal %d", what, WTERMSIG(status));
}
