package frame

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// encoder appends tagged fields to a payload.
type encoder struct{ b []byte }

func (e *encoder) bytes(tag byte, v []byte) {
	e.b = append(e.b, tag)
	e.b = binary.AppendUvarint(e.b, uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) str(tag byte, v string) {
	if v != "" {
		e.bytes(tag, []byte(v))
	}
}

func (e *encoder) uint(tag byte, v uint64) {
	if v != 0 {
		e.bytes(tag, binary.AppendUvarint(nil, v))
	}
}

func (e *encoder) bool(tag byte, v bool) {
	if v {
		e.bytes(tag, []byte{1})
	}
}

// field is one decoded field.
type field struct {
	tag byte
	val []byte
}

// fieldSpec says what a tag may hold: its kind, its maximum length, whether it may
// repeat, and the first version that defines it.
type fieldSpec struct {
	kind     kind
	max      int
	repeated bool
	since    uint16
}

type kind uint8

const (
	kindString kind = iota
	kindBytes
	kindUint
	kindBool
	kindMessage // a nested field list, decoded by its owner
)

// decodeFields splits a payload into fields and checks each against specs: order, size,
// repetition, kind and, when strict, that the tag exists in version. A non-strict decode
// (hello and its answer) skips tags it does not know.
func decodeFields(p []byte, specs map[byte]fieldSpec, version uint16, strict bool) ([]field, error) {
	var out []field
	last, lastSet := byte(0), false
	for len(p) > 0 {
		tag := p[0]
		n, k := binary.Uvarint(p[1:])
		if k <= 0 {
			return nil, fmt.Errorf("%w: field %d: bad length", ErrMalformed, tag)
		}
		p = p[1+k:]
		if n > uint64(len(p)) {
			return nil, fmt.Errorf("%w: field %d: length %d past the payload's end", ErrTruncated, tag, n)
		}
		val := p[:n]
		p = p[n:]
		spec, known := specs[tag]
		if known && spec.since > version && strict {
			return nil, fmt.Errorf("%w: field %d is not defined in protocol version %d", ErrMalformed, tag, version)
		}
		if lastSet && tag < last {
			return nil, fmt.Errorf("%w: field %d after field %d (out of order)", ErrMalformed, tag, last)
		}
		if lastSet && tag == last && known && !spec.repeated {
			return nil, fmt.Errorf("%w: field %d repeated", ErrMalformed, tag)
		}
		last, lastSet = tag, true
		if !known || spec.since > version {
			if strict {
				return nil, fmt.Errorf("%w: unknown field %d", ErrMalformed, tag)
			}
			continue
		}
		if len(val) > spec.max {
			return nil, fmt.Errorf("%w: field %d of %d bytes (limit %d)", ErrTooLarge, tag, len(val), spec.max)
		}
		switch spec.kind {
		case kindString:
			if !utf8.Valid(val) {
				return nil, fmt.Errorf("%w: field %d is not UTF-8", ErrMalformed, tag)
			}
		case kindUint:
			if _, err := uvarint(val); err != nil {
				return nil, fmt.Errorf("field %d: %w", tag, err)
			}
		case kindBool:
			if len(val) != 1 || val[0] != 1 {
				return nil, fmt.Errorf("%w: field %d is not a boolean", ErrMalformed, tag)
			}
		}
		out = append(out, field{tag, val})
	}
	return out, nil
}

func uvarint(v []byte) (uint64, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || k != len(v) {
		return 0, fmt.Errorf("%w: bad integer", ErrMalformed)
	}
	return n, nil
}

func mustUint(v []byte) uint64 { n, _ := uvarint(v); return n }
