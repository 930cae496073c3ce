package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"sealctl": main})
}

// TestScript runs the CLI scripts in testdata/script. Besides the standard
// commands they can use:
//
//	perm FILE MODE   FILE's permission bits are MODE (octal)
//	tamper FILE      change one character in the middle of the sealed
//	                 token in FILE, keeping it well-formed base64url
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(e *testscript.Env) error {
			e.Setenv("GORACE", quickRaceExit())
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"perm":   cmdPerm,
			"tamper": cmdTamper,
		},
	})
}

func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	want, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil {
		ts.Fatalf("perm: bad mode %q", args[1])
	}
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	got := uint64(st.Mode().Perm())
	if (got == want) == neg {
		ts.Fatalf("perm %s: mode is %04o, want %s%04o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

func cmdTamper(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: tamper FILE")
	}
	path := ts.MkAbs(args[0])
	tok := strings.TrimSpace(ts.ReadFile(args[0]))
	i := strings.LastIndexByte(tok, '.') + (len(tok)-strings.LastIndexByte(tok, '.'))/2
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	tok = tok[:i] + string(c) + tok[i+1:]
	ts.Check(os.WriteFile(path, []byte(tok+"\n"), 0o644))
}

// quickRaceExit returns a GORACE value for child processes without the
// race detector's one-second sleep at exit, which otherwise dominates the
// run time of scripts under -race.
func quickRaceExit() string {
	return strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
}
