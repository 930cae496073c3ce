package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every error that reports a bad policy.
var ErrInvalid = errors.New("invalid policy")

// Problem is one error in a policy file, located by file, line and field
// path ("rules[2].methods[0]").
type Problem struct {
	File  string
	Line  int // 0 when the problem concerns the whole file
	Field string
	Msg   string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Errors is every problem found in a policy file, in file order. Loading
// reports all problems at once rather than stopping at the first.
type Errors []Problem

func (e Errors) Error() string { return strings.Join(e.Lines(), "\n") }

// Lines returns one line per problem, as file:line: field: message.
func (e Errors) Lines() []string {
	lines := make([]string, len(e))
	for i, p := range e {
		lines[i] = p.String()
	}
	return lines
}

// Unwrap lets errors.Is(err, ErrInvalid) hold.
func (e Errors) Unwrap() error { return ErrInvalid }
