package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/tokrun/tokrun/internal/regfile"
	"github.com/tokrun/tokrun/sealing"
)

// maxSecretInput is the most secret input read: the largest value plus a
// trailing CRLF.
const maxSecretInput = sealing.MaxValueSize + 2

// readSecret reads the value to seal from the file path, or from stdin if
// path is "" or "-". On a terminal it prompts on stderr and reads without
// echo. Exactly one trailing "\n" or "\r\n" is removed; anything else is
// kept, for sealing to validate. Errors never contain the input.
func (e *env) readSecret(path, name string) (string, error) {
	var (
		data []byte
		err  error
	)
	switch {
	case path != "" && path != "-":
		var f *os.File
		if f, err = os.Open(path); err != nil {
			// The path is not quoted: a secret given to --in by mistake
			// would be.
			return "", fmt.Errorf("cannot open the --in file: %w", regfile.Cause(err))
		}
		defer f.Close()
		if fd, isTerm := terminalFD(f); isTerm {
			// --in /dev/tty or /dev/stdin on a terminal: typed, so prompted
			// for without echo.
			data, err = e.readPassword(fd, name)
		} else {
			data, err = readSecretFrom(f, "the secret in "+path)
		}
	default:
		if fd, isTerm := terminalFD(e.stdin); isTerm {
			data, err = e.readPassword(fd, name)
		} else {
			data, err = readSecretFrom(e.stdin, "the secret on stdin")
		}
	}
	defer clear(data)
	if err != nil {
		return "", err
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		return string(bytes.TrimSuffix(data, []byte("\n"))), nil
	}
	return string(data[:len(data)-2]), nil
}

func readSecretFrom(r io.Reader, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSecretInput+1))
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if len(data) > maxSecretInput {
		clear(data)
		return nil, fmt.Errorf("%s is larger than %d bytes, the limit for a sealed value", what, sealing.MaxValueSize)
	}
	return data, nil
}

// readPassword prompts on stderr and reads one line from the terminal fd
// with echo off. If the user interrupts, the terminal is restored before
// exiting (with status 128+signal), so the shell is not left without echo.
// If the job is stopped (Ctrl-Z) and resumed, echo is turned off again and
// the prompt repeated: the shell turned echo on while it had the terminal.
func (e *env) readPassword(fd int, name string) ([]byte, error) {
	state, err := term.GetState(fd)
	if err != nil {
		return nil, fmt.Errorf("reading the secret from the terminal: %w", err)
	}
	prompt := fmt.Sprintf("Enter secret for %s: ", name)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGCONT)
	done, stopped := make(chan struct{}), make(chan struct{})
	defer func() {
		signal.Stop(sigs)
		close(done)
		<-stopped
		// As sealctl found it: a SIGCONT before term.ReadPassword saved
		// the state would have it restore echo off.
		_ = term.Restore(fd, state)
	}()
	go func() {
		defer close(stopped)
		for {
			select {
			case sig := <-sigs:
				if sig == syscall.SIGCONT {
					if echoOff(fd) == nil {
						fmt.Fprint(e.stderr, prompt)
					}
					continue
				}
				_ = term.Restore(fd, state)
				fmt.Fprintf(e.stderr, "\nsealctl: error: interrupted\n")
				code := 1
				if s, ok := sig.(syscall.Signal); ok {
					code = 128 + int(s) // as the shell reports a death by signal
				}
				os.Exit(code)
			case <-done:
				return
			}
		}
	}()

	fmt.Fprint(e.stderr, prompt)
	data, err := term.ReadPassword(fd)
	fmt.Fprintln(e.stderr)
	if err != nil {
		clear(data)
		return nil, fmt.Errorf("reading the secret from the terminal: %w", err)
	}
	if len(data) > maxSecretInput {
		clear(data)
		return nil, fmt.Errorf("the secret is larger than %d bytes, the limit for a sealed value", sealing.MaxValueSize)
	}
	return data, nil
}
