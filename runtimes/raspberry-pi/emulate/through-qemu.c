/* Stands in for an arm64 program inside the emulated root, where the kernel has no binfmt_misc entry for arm64:
 * a static x86-64 binary that runs the real program, kept under /qemu-real, through qemu-aarch64-static.
 * Every program a script or Python starts (python3, bash, hostname, pip's console scripts via their #! line)
 * then runs emulated, as binfmt would make it. Built by emulate.sh: gcc -static -O2 -o through-qemu through-qemu.c
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char self[PATH_MAX], real[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) { perror("through-qemu: /proc/self/exe (is /proc mounted in the root?)"); return 127; }
    self[n] = '\0';
    snprintf(real, sizeof real, "/qemu-real%s", self);
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args) return 127;
    args[0] = "qemu-aarch64-static";
    args[1] = "-0";          /* the program sees the name it was called by: Python finds its venv from it */
    args[2] = argv[0];
    args[3] = real;
    for (int i = 1; i < argc; i++) args[i + 3] = argv[i];
    execv("/usr/bin/qemu-aarch64-static", args);
    perror("through-qemu: /usr/bin/qemu-aarch64-static");
    return 127;
}
