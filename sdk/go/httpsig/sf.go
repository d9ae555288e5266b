package httpsig

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// This file holds the small subset of RFC 8941 (Structured Field Values) the protocol needs:
// parsing Dictionaries whose members are Items or Inner Lists with Parameters, and serializing
// Inner Lists, Items and Parameters. It is written to be strict and total: every input either
// parses or returns an error, nothing panics. Unlike the RFC's "last one wins" rule, duplicate
// dictionary keys and duplicate parameter keys are kept in order, so that the protocol profile
// can refuse a second label or a repeated parameter instead of silently picking one.

type sfKind int

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBool
)

// bareItem is one RFC 8941 bare item. s holds the text of strings, tokens and decimals.
type bareItem struct {
	kind sfKind
	i    int64
	s    string
	b    []byte
	bo   bool
}

type sfParam struct {
	key string
	val bareItem
}

type sfItem struct {
	bare   bareItem
	params []sfParam
}

// sfMember is one dictionary member: an item, or an inner list with its own parameters.
type sfMember struct {
	key    string
	inner  bool
	item   sfItem
	list   []sfItem
	params []sfParam
}

var errSF = errors.New("structured field does not parse")

type sfParser struct {
	s   string
	pos int
}

func (p *sfParser) eof() bool { return p.pos >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func (p *sfParser) skipSP() {
	for !p.eof() && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

// parseDictionary parses an RFC 8941 Dictionary (section 4.2.2). An empty input is an empty
// dictionary, as the RFC says; callers decide whether that is acceptable.
func parseDictionary(s string) ([]sfMember, error) {
	p := &sfParser{s: strings.Trim(s, " \t")}
	var out []sfMember
	for !p.eof() {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if p.peek() == '=' {
			p.pos++
			if p.peek() == '(' {
				list, params, err := p.parseInnerList()
				if err != nil {
					return nil, err
				}
				m.inner, m.list, m.params = true, list, params
			} else {
				it, err := p.parseItem()
				if err != nil {
					return nil, err
				}
				m.item = it
			}
		} else {
			params, err := p.parseParams()
			if err != nil {
				return nil, err
			}
			m.item = sfItem{bare: bareItem{kind: sfBool, bo: true}, params: params}
		}
		out = append(out, m)
		p.skipOWS()
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, errSF
		}
		p.pos++
		p.skipOWS()
		if p.eof() {
			return nil, errSF // trailing comma
		}
	}
	return out, nil
}

func (p *sfParser) parseInnerList() ([]sfItem, []sfParam, error) {
	if p.peek() != '(' {
		return nil, nil, errSF
	}
	p.pos++
	var items []sfItem
	for !p.eof() {
		p.skipSP()
		if p.peek() == ')' {
			p.pos++
			params, err := p.parseParams()
			if err != nil {
				return nil, nil, err
			}
			return items, params, nil
		}
		it, err := p.parseItem()
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it)
		if c := p.peek(); c != ' ' && c != ')' {
			return nil, nil, errSF
		}
	}
	return nil, nil, errSF
}

func (p *sfParser) parseItem() (sfItem, error) {
	b, err := p.parseBareItem()
	if err != nil {
		return sfItem{}, err
	}
	params, err := p.parseParams()
	if err != nil {
		return sfItem{}, err
	}
	return sfItem{bare: b, params: params}, nil
}

func (p *sfParser) parseParams() ([]sfParam, error) {
	var out []sfParam
	for p.peek() == ';' {
		p.pos++
		p.skipSP()
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		val := bareItem{kind: sfBool, bo: true}
		if p.peek() == '=' {
			p.pos++
			if val, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		out = append(out, sfParam{key: key, val: val})
	}
	return out, nil
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool   { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func (p *sfParser) parseKey() (string, error) {
	c := p.peek()
	if !isLCAlpha(c) && c != '*' {
		return "", errSF
	}
	start := p.pos
	for !p.eof() {
		c := p.s[p.pos]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
}

func (p *sfParser) parseBareItem() (bareItem, error) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == '"':
		return p.parseString()
	case c == '*' || isAlpha(c):
		return p.parseToken()
	case c == ':':
		return p.parseBytes()
	case c == '?':
		return p.parseBool()
	}
	return bareItem{}, errSF
}

func (p *sfParser) parseNumber() (bareItem, error) {
	start := p.pos
	neg := false
	if p.peek() == '-' {
		neg = true
		p.pos++
	}
	if !isDigit(p.peek()) {
		return bareItem{}, errSF
	}
	digitsStart := p.pos
	decimal := false
	for !p.eof() {
		c := p.s[p.pos]
		if isDigit(c) {
			p.pos++
		} else if c == '.' && !decimal {
			if p.pos-digitsStart > 12 {
				return bareItem{}, errSF
			}
			decimal = true
			p.pos++
		} else {
			break
		}
		n := p.pos - digitsStart
		if (!decimal && n > 15) || (decimal && n > 16) {
			return bareItem{}, errSF
		}
	}
	text := p.s[digitsStart:p.pos]
	if !decimal {
		v, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return bareItem{}, errSF
		}
		if neg {
			v = -v
		}
		return bareItem{kind: sfInteger, i: v}, nil
	}
	if strings.HasSuffix(text, ".") {
		return bareItem{}, errSF
	}
	if frac := text[strings.IndexByte(text, '.')+1:]; len(frac) > 3 {
		return bareItem{}, errSF
	}
	return bareItem{kind: sfDecimal, s: p.s[start:p.pos]}, nil
}

func (p *sfParser) parseString() (bareItem, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '\\':
			if p.eof() {
				return bareItem{}, errSF
			}
			n := p.s[p.pos]
			if n != '"' && n != '\\' {
				return bareItem{}, errSF
			}
			b.WriteByte(n)
			p.pos++
		case c == '"':
			return bareItem{kind: sfString, s: b.String()}, nil
		case c < 0x20 || c > 0x7e:
			return bareItem{}, errSF
		default:
			b.WriteByte(c)
		}
	}
	return bareItem{}, errSF
}

func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) parseToken() (bareItem, error) {
	start := p.pos
	p.pos++
	for !p.eof() {
		c := p.s[p.pos]
		if !isTChar(c) && c != ':' && c != '/' {
			break
		}
		p.pos++
	}
	return bareItem{kind: sfToken, s: p.s[start:p.pos]}, nil
}

func (p *sfParser) parseBytes() (bareItem, error) {
	p.pos++ // opening colon
	end := strings.IndexByte(p.s[p.pos:], ':')
	if end < 0 {
		return bareItem{}, errSF
	}
	text := p.s[p.pos : p.pos+end]
	p.pos += end + 1
	for i := 0; i < len(text); i++ {
		c := text[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' && c != '=' {
			return bareItem{}, errSF
		}
	}
	// The protocol fixes standard base64 with padding (PROTOCOL.md section 1), so decode strictly.
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil {
		return bareItem{}, errSF
	}
	return bareItem{kind: sfBytes, b: b}, nil
}

func (p *sfParser) parseBool() (bareItem, error) {
	p.pos++
	switch p.peek() {
	case '0':
		p.pos++
		return bareItem{kind: sfBool, bo: false}, nil
	case '1':
		p.pos++
		return bareItem{kind: sfBool, bo: true}, nil
	}
	return bareItem{}, errSF
}

// Serialization (RFC 8941 section 4.1). Only values built by this package are serialized; the
// functions return an error for values that have no serialization (a string with a control byte).

func serializeBareItem(b *strings.Builder, v bareItem) error {
	switch v.kind {
	case sfInteger:
		if v.i > 999999999999999 || v.i < -999999999999999 {
			return errSF
		}
		b.WriteString(strconv.FormatInt(v.i, 10))
	case sfDecimal:
		b.WriteString(v.s)
	case sfString:
		b.WriteByte('"')
		for i := 0; i < len(v.s); i++ {
			c := v.s[i]
			if c < 0x20 || c > 0x7e {
				return errSF
			}
			if c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteByte('"')
	case sfToken:
		if v.s == "" || (!isAlpha(v.s[0]) && v.s[0] != '*') {
			return errSF
		}
		for i := 1; i < len(v.s); i++ {
			if c := v.s[i]; !isTChar(c) && c != ':' && c != '/' {
				return errSF
			}
		}
		b.WriteString(v.s)
	case sfBytes:
		b.WriteByte(':')
		b.WriteString(base64.StdEncoding.EncodeToString(v.b))
		b.WriteByte(':')
	case sfBool:
		if v.bo {
			b.WriteString("?1")
		} else {
			b.WriteString("?0")
		}
	default:
		return errSF
	}
	return nil
}

func validKey(k string) bool {
	if k == "" || (!isLCAlpha(k[0]) && k[0] != '*') {
		return false
	}
	for i := 1; i < len(k); i++ {
		c := k[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			return false
		}
	}
	return true
}

func serializeParams(b *strings.Builder, params []sfParam) error {
	for _, p := range params {
		if !validKey(p.key) {
			return errSF
		}
		b.WriteByte(';')
		b.WriteString(p.key)
		if p.val.kind == sfBool && p.val.bo {
			continue
		}
		b.WriteByte('=')
		if err := serializeBareItem(b, p.val); err != nil {
			return err
		}
	}
	return nil
}

func serializeItem(b *strings.Builder, it sfItem) error {
	if err := serializeBareItem(b, it.bare); err != nil {
		return err
	}
	return serializeParams(b, it.params)
}

func serializeInnerList(items []sfItem, params []sfParam) (string, error) {
	var b strings.Builder
	b.WriteByte('(')
	for i, it := range items {
		if i > 0 {
			b.WriteByte(' ')
		}
		if err := serializeItem(&b, it); err != nil {
			return "", err
		}
	}
	b.WriteByte(')')
	if err := serializeParams(&b, params); err != nil {
		return "", err
	}
	return b.String(), nil
}

func sfStr(s string) bareItem { return bareItem{kind: sfString, s: s} }
func sfInt(i int64) bareItem  { return bareItem{kind: sfInteger, i: i} }
func sfByt(b []byte) bareItem { return bareItem{kind: sfBytes, b: b} }
func sfTrue() bareItem        { return bareItem{kind: sfBool, bo: true} }
func sfBareEq(a, b bareItem) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case sfInteger:
		return a.i == b.i
	case sfBool:
		return a.bo == b.bo
	case sfBytes:
		return string(a.b) == string(b.b)
	default:
		return a.s == b.s
	}
}

// sfItemEq reports whether two items are equal, parameters included and in order.
func sfItemEq(a, b sfItem) bool {
	if !sfBareEq(a.bare, b.bare) || len(a.params) != len(b.params) {
		return false
	}
	for i := range a.params {
		if a.params[i].key != b.params[i].key || !sfBareEq(a.params[i].val, b.params[i].val) {
			return false
		}
	}
	return true
}
