package runner

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// Check is one finding of [Doctor].
type Check struct {
	Name   string
	OK     bool
	Detail string
	// Required checks must pass for tokrun to run here.
	Required bool
}

// Doctor checks what this machine offers tokrun: privileges or user
// namespaces, seccomp (for gVisor's systrap platform), cgroups and the
// state directory. It does not start a sandbox; "tokrun doctor" runs one
// after these checks.
func Doctor(stateDir string) []Check {
	var out []Check
	root := os.Geteuid() == 0
	out = append(out, Check{Name: "privileges", OK: true, Detail: map[bool]string{true: "running as root: full sandbox with cgroups", false: "not root: rootless mode, which needs user namespaces"}[root]})
	userns := checkUserns()
	out = append(out, Check{Name: "user namespaces", OK: userns == nil, Required: !root, Detail: errOr(userns, "unprivileged user namespaces can be created")})
	out = append(out, Check{Name: "seccomp", OK: hasSeccomp(), Required: true, Detail: map[bool]string{true: "available (gVisor's systrap platform uses it)", false: "not in /proc/self/status; gVisor's systrap platform needs seccomp filters"}[hasSeccomp()]})
	cg := cgroupVersion()
	out = append(out, Check{Name: "cgroups", OK: cg != "", Detail: map[bool]string{true: cg, false: "no cgroup file system at /sys/fs/cgroup; runs are not resource-accounted"}[cg != ""]})
	if _, err := os.Stat("/dev/kvm"); err == nil {
		out = append(out, Check{Name: "kvm", OK: true, Detail: "/dev/kvm exists; tokrun uses systrap regardless"})
	}
	st, err := openState(stateDir)
	out = append(out, Check{Name: "state directory", OK: err == nil, Required: true, Detail: errOr(err, st.dir+" is usable")})
	return out
}

func errOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// checkUserns starts /bin/true in a new user namespace.
func checkUserns() error {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		hint := ""
		if b, e := os.ReadFile("/proc/sys/kernel/unprivileged_userns_clone"); e == nil && strings.TrimSpace(string(b)) == "0" {
			hint = " (kernel.unprivileged_userns_clone is 0)"
		}
		return fmt.Errorf("cannot create a user namespace: %v%s", err, hint)
	}
	return nil
}

func hasSeccomp() bool {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Seccomp:") {
			return true
		}
	}
	return false
}

func cgroupVersion() string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "cgroup v2"
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
		return "cgroup v1"
	}
	return ""
}
