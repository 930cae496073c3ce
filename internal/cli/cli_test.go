package cli

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestReportGrammar(t *testing.T) {
	var out bytes.Buffer
	root := Root("prog", "short", "long", nil, &out, &out)
	sub := &cobra.Command{Use: "seal", Run: func(*cobra.Command, []string) {}}
	root.AddCommand(sub)
	tests := []struct {
		name string
		cmd  *cobra.Command
		args []string
		err  error
		want string
	}{
		{"plain error is a usage error", sub, nil, errors.New("boom"),
			"prog: error: boom\nprog: hint: run 'prog seal --help'\n"},
		{"hints", sub, nil, WithHints(errors.New("no key"), "run prog keygen"),
			"prog: error: no key\nprog: hint: run prog keygen\n"},
		{"usage", sub, nil, Usagef("takes %d arguments", 0),
			"prog: error: takes 0 arguments\nprog: hint: run 'prog seal --help'\n"},
		{"unknown command suggests", root, []string{"sael"}, errors.New(`unknown command "sael" for "prog"`),
			"prog: error: unknown command \"sael\" for \"prog\"\nprog: hint: did you mean 'prog seal'?\nprog: hint: run 'prog --help'\n"},
		{"an unknown word like no command is not echoed", root, []string{"sk-live-0123456789abcdef"}, errors.New(`unknown command "sk-live-0123456789abcdef" for "prog"`),
			"prog: error: unknown command for \"prog\"\nprog: hint: run 'prog --help'\n"},
	}
	for _, tt := range tests {
		out.Reset()
		Report(&out, "prog", tt.cmd, tt.args, tt.err)
		if out.String() != tt.want {
			t.Errorf("%s:\n got %q\nwant %q", tt.name, out.String(), tt.want)
		}
	}
	out.Reset()
	Report(&out, "prog", sub, nil, WithHints(fmt.Errorf("wrapped: %w", twoLines{})))
	if out.String() != "prog: error: a:1: x\nprog: error: a:2: y\n" {
		t.Errorf("split lines: %q", out.String())
	}
}

// An unknown shorthand flag cluster may hold a secret typed by mistake;
// it is never echoed.
func TestFlagErrorDropsShorthandCluster(t *testing.T) {
	err := FlagError(nil, errors.New("unknown shorthand flag: 'x' in -xsk-live-secret"))
	var ce *Error
	if !errors.As(err, &ce) || !ce.Usage || err.Error() != "unknown shorthand flag: 'x'" {
		t.Fatalf("err = %v", err)
	}
}

// twoLines is an error of two problems.
type twoLines struct{}

func (twoLines) Error() string   { return "a:1: x\na:2: y" }
func (twoLines) Lines() []string { return []string{"a:1: x", "a:2: y"} }

// TestHelpCommand: help with a word that names no command is an error
// that does not echo the word (it could be a secret pasted there); with a
// command's name it prints that command's help.
func TestHelpCommand(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := Root("prog", "short", "long", nil, &out, &out)
		root.AddCommand(&cobra.Command{Use: "seal", Long: "Seal things.", Run: func(*cobra.Command, []string) {}})
		root.SetArgs(args)
		cmd, err := root.ExecuteC()
		if err != nil {
			Report(&out, "prog", cmd, args, err)
		}
		return out.String(), err
	}
	if out, err := run("help", "seal"); err != nil || !strings.HasPrefix(out, "Seal things.") {
		t.Errorf("help seal: %v\n%s", err, out)
	}
	out, err := run("help", "sk-live-0123456789abcdef")
	if err == nil || strings.Contains(out, "sk-live") || !strings.Contains(out, "prog: error: no command by that name") {
		t.Errorf("help with a pasted word: %v\n%s", err, out)
	}
	if out, err := run("help", "sael"); err == nil || !strings.Contains(out, "did you mean 'prog seal'?") {
		t.Errorf("help with a typo: %v\n%s", err, out)
	}
}

// TestCompletionRefusesUnknownShell: cobra's default "completion" prints
// its help and succeeds for a shell it does not know, so a script that
// wrote "completion zhs > file" would go on with help text for a script.
// Through Execute it is an error, which suggests the shell meant and does
// not echo a word that is not close to one.
func TestCompletionRefusesUnknownShell(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := Root("prog", "short", "long", nil, &out, &out)
		root.AddCommand(&cobra.Command{Use: "seal", Run: func(*cobra.Command, []string) {}})
		cmd, err := Execute(root, args)
		if err != nil {
			Report(&out, "prog", cmd, args, err)
		}
		return out.String(), err
	}
	if out, err := run("completion", "bash"); err != nil || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: %v\n%s", err, out)
	}
	if out, err := run("completion"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("completion alone should print its help: %v\n%s", err, out)
	}
	if out, err := run("completion", "zhs"); err == nil || !strings.Contains(out, "did you mean 'prog completion zsh'?") {
		t.Errorf("completion zhs: %v\n%s", err, out)
	}
	out, err := run("completion", "sk-live-0123456789abcdef")
	if err == nil || strings.Contains(out, "sk-live") || !strings.Contains(out, `prog: error: unknown command for "prog completion"`) {
		t.Errorf("completion with a pasted word: %v\n%s", err, out)
	}
}
