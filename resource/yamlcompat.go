package resource

import (
	"errors"
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"
)

// UnmarshalYAML lets yaml.v3 decode a Duration outside Parse, with Parse's rules.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	return decodeOne(n, reflect.ValueOf(d).Elem())
}

// UnmarshalYAML lets yaml.v3 decode Labels outside Parse, with Parse's rules: each key maps
// to one string or a list of strings.
func (l *Labels) UnmarshalYAML(n *yaml.Node) error {
	return decodeOne(n, reflect.ValueOf(l).Elem())
}

// decodeOne decodes a single value with the strict decoder, for the yaml.Unmarshaler methods.
func decodeOne(n *yaml.Node, v reflect.Value) error {
	d := &decoder{budget: 1 << 20}
	err := d.decode(n, v, nil)
	var de *decodeError
	if errors.As(err, &de) {
		return fmt.Errorf("line %d: %w", de.node.Line, de.err)
	}
	return err
}
