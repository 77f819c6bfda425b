package resource

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// encode builds the yaml.Node for v, the mirror of decoder.decode. Marshal builds nodes itself
// rather than handing structs to yaml.v3 because yaml.v3's own marshaling loses leading line
// breaks and reads "<<" back as a merge key; building the node lets it pick each string's
// style.
func encode(v reflect.Value) (*yaml.Node, error) {
	switch v.Type() {
	case durationType:
		return strNode(time.Duration(v.Int()).String()), nil
	case labelsType:
		return encodeLabels(v.Interface().(Labels)), nil
	case boolOptType:
		if v.Interface().(BoolOption) == OptionUnset {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagNull, Value: "null"}, nil
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagBool, Value: fmt.Sprint(v.Interface().(BoolOption).Value(false))}, nil
	case timeType:
		t := v.Interface().(time.Time).UTC()
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagTimestamp, Value: t.Format(time.RFC3339Nano)}, nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagNull, Value: "null"}, nil
		}
		return encode(v.Elem())
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			f := v.Field(i)
			if opts == "omitempty" && isEmpty(f) {
				continue
			}
			fn, err := encode(f)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(name), fn)
		}
		return n, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle
		}
		for i := range v.Len() {
			item, err := encode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, item)
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			item, err := encode(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(k.String()), item)
		}
		return n, nil
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagBool, Value: fmt.Sprint(v.Bool())}, nil
	case reflect.Int, reflect.Int64:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tagInt, Value: fmt.Sprint(v.Int())}, nil
	}
	return nil, fmt.Errorf("internal error: cannot encode %s", v.Type())
}

func encodeLabels(l Labels) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := l[k]
		var vn *yaml.Node
		if len(vs) == 1 {
			vn = strNode(vs[0])
		} else {
			vn = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			if len(vs) == 0 {
				vn.Style = yaml.FlowStyle
			}
			for _, s := range vs {
				vn.Content = append(vn.Content, strNode(s))
			}
		}
		n.Content = append(n.Content, strNode(k), vn)
	}
	return n
}

// strNode is a string scalar. yaml.v3 quotes it when its plain form would read as another
// type, and writes multi-line strings as literal blocks. Cases it gets wrong are
// double-quoted here: it writes "<<" plain, which reads back as a merge key, and its literal
// blocks lose leading line breaks and write a tab at the start of a line where its own
// parser refuses it. A literal block is kept only for the plain text it is meant for, such
// as a PEM certificate.
func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tagStr, Value: s}
	if s == "<<" || strings.Contains(s, "\n") && !literalBlockSafe(s) {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// literalBlockSafe reports whether yaml.v3 writes s as a literal block that reads back as s:
// no line starts with a space or tab, and s neither starts with nor is only line breaks.
func literalBlockSafe(s string) bool {
	if strings.HasPrefix(s, "\n") || strings.TrimRight(s, "\n") == "" {
		return false
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			return false
		}
	}
	return true
}

// isEmpty is omitempty: zero values and empty lists and maps.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}
