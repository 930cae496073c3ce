package runner

import (
	"flag"
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"gvisor.dev/gvisor/pkg/log"
	"gvisor.dev/gvisor/runsc/config"
	"gvisor.dev/gvisor/runsc/container"
)

// gvisorConfig builds runsc's configuration the way runsc's own flags
// would, on a private flag set so tokrun's command line is untouched.
func gvisorConfig(root, logDir string, rootless, debug bool) (*config.Config, error) {
	fs := flag.NewFlagSet("runsc", flag.ContinueOnError)
	fs.SetOutput(discard{})
	config.RegisterFlags(fs)
	args := []string{
		"--root=" + root,
		"--network=none",
		"--host-uds=open",
		"--platform=systrap",
		"--overlay2=root:memory",
		"--log=" + filepath.Join(logDir, "runsc.log"),
		"--log-format=text",
		"--panic-log=" + filepath.Join(logDir, "panic.log"),
	}
	if rootless {
		args = append(args, "--rootless", "--ignore-cgroups")
	}
	if debug {
		args = append(args, "--debug", "--debug-log="+logDir+"/")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return config.NewFromFlags(fs)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// stdioMu serialises the swap of os.Stdin/out/err that runsc's sandbox
// creation reads to find the container's stdio.
var stdioMu sync.Mutex

// createContainer creates the sandbox with in, out and errw as its stdio.
func createContainer(conf *config.Config, id string, spec *specs.Spec, bundle, consoleSocket string, in, out, errw *os.File) (*container.Container, error) {
	stdioMu.Lock()
	defer stdioMu.Unlock()
	oldIn, oldOut, oldErr := os.Stdin, os.Stdout, os.Stderr
	os.Stdin, os.Stdout, os.Stderr = in, out, errw
	defer func() { os.Stdin, os.Stdout, os.Stderr = oldIn, oldOut, oldErr }()
	return container.New(conf, container.Args{
		ID:            id,
		Spec:          spec,
		BundleDir:     bundle,
		ConsoleSocket: consoleSocket,
		Attached:      true,
	})
}

// setLogTarget sends gVisor's own log lines of this process to a file in
// logDir, never to the user's terminal.
func setLogTarget(logDir string) {
	f, err := os.OpenFile(filepath.Join(logDir, "tokrun.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		log.SetTarget(log.GoogleEmitter{Writer: &log.Writer{Next: discard{}}})
		return
	}
	log.SetTarget(log.GoogleEmitter{Writer: &log.Writer{Next: f}})
}
