package policy

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// parser walks a yaml.Node tree by hand so that every problem carries its
// line and field path, unknown and duplicate keys are caught, and all
// problems are collected rather than the first one.
type parser struct {
	file     string
	problems Errors
	warnings []Problem
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(n *yaml.Node, field, format string, args ...any) {
	p.warnings = append(p.warnings, Problem{File: p.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!bool":
			return "a boolean"
		case "!!float":
			return "a number"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!")
	}
	return "an unexpected node"
}

// field is one handler for a known mapping key.
type field struct {
	name     string
	required bool
	handle   func(n *yaml.Node, path string)
}

// mapping checks that n is a mapping, dispatches known keys in file order,
// and reports unknown, duplicate and missing keys.
func (p *parser) mapping(n *yaml.Node, path string, fields []field) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "expected a mapping, found %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := k.Value
		fp := join(path, name)
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
			p.errorf(k, path, "keys must be plain strings (merge keys and aliases are not supported)")
			continue
		}
		if seen[name] {
			p.errorf(k, fp, "duplicate key")
			continue
		}
		seen[name] = true
		f := findField(fields, name)
		if f == nil {
			p.errorf(k, fp, "unknown field%s", suggest(name, fields))
			continue
		}
		if v.Kind == yaml.AliasNode {
			p.errorf(v, fp, "aliases are not supported")
			continue
		}
		f.handle(v, fp)
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			p.errorf(n, path, "missing required field %q", f.name)
		}
	}
}

func findField(fields []field, name string) *field {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

func suggest(name string, fields []field) string {
	var names []string
	for _, f := range fields {
		names = append(names, f.name)
	}
	return fmt.Sprintf(" %q (known fields: %s)", name, joinNames(names))
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// str reads a string scalar.
func (p *parser) str(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		p.errorf(n, path, "expected a string, found %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// integer reads an integer scalar.
func (p *parser) integer(n *yaml.Node, path string) (int, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		p.errorf(n, path, "expected an integer, found %s", kindName(n))
		return 0, false
	}
	v, err := strconv.Atoi(n.Value)
	if err != nil {
		p.errorf(n, path, "expected a decimal integer, found %q", n.Value)
		return 0, false
	}
	if digits := strings.TrimLeft(n.Value, "+-"); len(digits) > 1 && digits[0] == '0' {
		// YAML 1.1 readers take 0443 for octal (291).
		p.errorf(n, path, "expected a decimal integer without leading zeros, found %q, which some YAML readers take for octal", n.Value)
		return 0, false
	}
	return v, true
}

// boolean reads a true/false scalar.
func (p *parser) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(n, path, "expected true or false, found %s", kindName(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		p.errorf(n, path, "expected true or false")
		return false, false
	}
	return b, true
}

// strList reads a list of strings; each element is passed to each with its
// node and path.
func (p *parser) strList(n *yaml.Node, path string, each func(s string, n *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, path, "expected a list, found %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		p.errorf(n, path, "empty list; omit the field instead")
		return
	}
	for i, e := range n.Content {
		ep := index(path, i)
		if s, ok := p.str(e, ep); ok {
			each(s, e, ep)
		}
	}
}
