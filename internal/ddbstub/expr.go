package ddbstub

import (
	"bytes"
	"fmt"
	"maps"
	"reflect"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// This file parses and evaluates the subset of DynamoDB's expression
// language that ddbtrack and its benchmarks' baseline send: top-level
// attribute paths (#name or a plain name), :value placeholders, the
// comparators, IN, BETWEEN, AND, OR, NOT, attribute_exists,
// attribute_not_exists and begins_with in conditions; SET (with +, -,
// if_not_exists and list_append), REMOVE and ADD in updates. Anything else
// is refused with a ValidationException that names it, so a stub that is
// too small fails loudly instead of answering wrongly.

// env is what an expression is evaluated against.
type env struct {
	item   map[string]types.AttributeValue
	names  map[string]string
	values map[string]types.AttributeValue
}

func (e *env) attr(path string) (string, error) {
	if !strings.HasPrefix(path, "#") {
		return path, nil
	}
	name, ok := e.names[path]
	if !ok {
		return "", validation("the expression uses %s, which ExpressionAttributeNames does not define", path)
	}
	return name, nil
}

// placeholders records the #names and :values an expression uses, so that
// a request carrying unused ones can be refused as DynamoDB refuses it.
type placeholders struct{ names, values map[string]bool }

func (p *placeholders) add(tok string) {
	switch tok[0] {
	case '#':
		p.names[tok] = true
	case ':':
		p.values[tok] = true
	}
}

// tokenize splits an expression into tokens: names, placeholders,
// keywords, and the punctuation ( ) , = <> < <= > >= + -.
func tokenize(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')' || c == ',' || c == '=' || c == '+' || c == '-':
			toks = append(toks, s[i:i+1])
			i++
		case c == '<' || c == '>':
			if i+1 < len(s) && (s[i+1] == '=' || (c == '<' && s[i+1] == '>')) {
				toks = append(toks, s[i:i+2])
				i += 2
			} else {
				toks = append(toks, s[i:i+1])
				i++
			}
		case c == '#' || c == ':' || isWord(c):
			j := i + 1
			for j < len(s) && isWord(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, validation("ddbstub supports only top-level attributes: %q in %q is not supported", string(c), s)
		}
	}
	return toks, nil
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// parser is a recursive-descent parser over tokens.
type parser struct {
	src  string
	toks []string
	pos  int
	ph   placeholders
}

func newParser(src string) (*parser, error) {
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	return &parser{src: src, toks: toks, ph: placeholders{names: map[string]bool{}, values: map[string]bool{}}}, nil
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *parser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *parser) keyword(kw string) bool {
	if strings.EqualFold(p.peek(), kw) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(tok string) error {
	if got := p.next(); got != tok {
		return p.errorf("expected %q, found %q", tok, got)
	}
	return nil
}

func (p *parser) errorf(format string, args ...any) error {
	return validation("invalid expression %q: %s", p.src, fmt.Sprintf(format, args...))
}

// ---- Conditions ----

type cond interface {
	eval(e *env) (bool, error)
}

type (
	andCond   struct{ l, r cond }
	orCond    struct{ l, r cond }
	notCond   struct{ c cond }
	existCond struct {
		path   string
		exists bool
	}
	beginsCond struct {
		path   string
		prefix operand
	}
	cmpCond struct {
		op   string
		l, r operand
	}
	inCond struct {
		l    operand
		list []operand
	}
	betweenCond struct{ v, lo, hi operand }
)

func (c andCond) eval(e *env) (bool, error) {
	l, err := c.l.eval(e)
	if err != nil || !l {
		return false, err
	}
	return c.r.eval(e)
}

func (c orCond) eval(e *env) (bool, error) {
	l, err := c.l.eval(e)
	if err != nil || l {
		return l, err
	}
	return c.r.eval(e)
}

func (c notCond) eval(e *env) (bool, error) {
	v, err := c.c.eval(e)
	return !v, err
}

func (c existCond) eval(e *env) (bool, error) {
	name, err := e.attr(c.path)
	if err != nil {
		return false, err
	}
	_, ok := e.item[name]
	return ok == c.exists, nil
}

func (c beginsCond) eval(e *env) (bool, error) {
	name, err := e.attr(c.path)
	if err != nil {
		return false, err
	}
	p, ok, err := c.prefix.value(e)
	if err != nil || !ok {
		return false, err
	}
	switch v := e.item[name].(type) {
	case *types.AttributeValueMemberS:
		ps, ok := p.(*types.AttributeValueMemberS)
		return ok && strings.HasPrefix(v.Value, ps.Value), nil
	case *types.AttributeValueMemberB:
		pb, ok := p.(*types.AttributeValueMemberB)
		return ok && bytes.HasPrefix(v.Value, pb.Value), nil
	}
	return false, nil
}

func (c cmpCond) eval(e *env) (bool, error) {
	l, lok, err := c.l.value(e)
	if err != nil {
		return false, err
	}
	r, rok, err := c.r.value(e)
	if err != nil {
		return false, err
	}
	if !lok || !rok {
		// A missing attribute compares as false, even for <>.
		return false, nil
	}
	if c.op == "=" {
		return equal(l, r), nil
	}
	if c.op == "<>" {
		return !equal(l, r), nil
	}
	n, ok := compare(l, r)
	if !ok {
		return false, nil
	}
	switch c.op {
	case "<":
		return n < 0, nil
	case "<=":
		return n <= 0, nil
	case ">":
		return n > 0, nil
	default: // ">="
		return n >= 0, nil
	}
}

func (c inCond) eval(e *env) (bool, error) {
	l, ok, err := c.l.value(e)
	if err != nil || !ok {
		return false, err
	}
	for _, o := range c.list {
		r, ok, err := o.value(e)
		if err != nil {
			return false, err
		}
		if ok && equal(l, r) {
			return true, nil
		}
	}
	return false, nil
}

func (c betweenCond) eval(e *env) (bool, error) {
	lo, err := cmpCond{"<=", c.lo, c.v}.eval(e)
	if err != nil || !lo {
		return false, err
	}
	return cmpCond{"<=", c.v, c.hi}.eval(e)
}

// parseCondition parses a whole condition expression.
func parseCondition(src string) (cond, placeholders, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, placeholders{}, err
	}
	c, err := p.or()
	if err != nil {
		return nil, placeholders{}, err
	}
	if p.pos != len(p.toks) {
		return nil, placeholders{}, p.errorf("unexpected %q", p.peek())
	}
	return c, p.ph, nil
}

func (p *parser) or() (cond, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = orCond{l, r}
	}
	return l, nil
}

func (p *parser) and() (cond, error) {
	l, err := p.not()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.not()
		if err != nil {
			return nil, err
		}
		l = andCond{l, r}
	}
	return l, nil
}

func (p *parser) not() (cond, error) {
	if p.keyword("NOT") {
		c, err := p.not()
		return notCond{c}, err
	}
	return p.primary()
}

func (p *parser) primary() (cond, error) {
	if p.peek() == "(" {
		p.next()
		c, err := p.or()
		if err != nil {
			return nil, err
		}
		return c, p.expect(")")
	}
	switch fn := strings.ToLower(p.peek()); fn {
	case "attribute_exists", "attribute_not_exists":
		p.next()
		path, err := p.call1()
		return existCond{path: path, exists: fn == "attribute_exists"}, err
	case "begins_with":
		p.next()
		if err := p.expect("("); err != nil {
			return nil, err
		}
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		prefix, err := p.operand()
		if err != nil {
			return nil, err
		}
		return beginsCond{path, prefix}, p.expect(")")
	case "attribute_type", "contains", "size":
		return nil, p.errorf("ddbstub does not implement %s()", fn)
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	switch op := p.next(); {
	case op == "=" || op == "<>" || op == "<" || op == "<=" || op == ">" || op == ">=":
		r, err := p.operand()
		return cmpCond{op, l, r}, err
	case strings.EqualFold(op, "IN"):
		if err := p.expect("("); err != nil {
			return nil, err
		}
		var list []operand
		for {
			o, err := p.operand()
			if err != nil {
				return nil, err
			}
			list = append(list, o)
			if p.peek() != "," {
				break
			}
			p.next()
		}
		return inCond{l, list}, p.expect(")")
	case strings.EqualFold(op, "BETWEEN"):
		lo, err := p.operand()
		if err != nil {
			return nil, err
		}
		if !p.keyword("AND") {
			return nil, p.errorf("BETWEEN needs AND")
		}
		hi, err := p.operand()
		return betweenCond{l, lo, hi}, err
	default:
		return nil, p.errorf("unexpected %q after an operand", op)
	}
}

// call1 parses "(path)".
func (p *parser) call1() (string, error) {
	if err := p.expect("("); err != nil {
		return "", err
	}
	path, err := p.path()
	if err != nil {
		return "", err
	}
	return path, p.expect(")")
}

func (p *parser) path() (string, error) {
	t := p.next()
	if t == "" || t[0] == ':' || !isWord(t[len(t)-1]) {
		return "", p.errorf("expected an attribute, found %q", t)
	}
	p.ph.add(t)
	return t, nil
}

// ---- Operands ----

type operand interface {
	// value returns the operand's value and whether it exists.
	value(e *env) (types.AttributeValue, bool, error)
}

type (
	pathOperand  string
	valueOperand string
	arithOperand struct {
		op   byte
		l, r operand
	}
	ifNotExistsOperand struct {
		path string
		def  operand
	}
	listAppendOperand struct{ l, r operand }
)

func (o pathOperand) value(e *env) (types.AttributeValue, bool, error) {
	name, err := e.attr(string(o))
	if err != nil {
		return nil, false, err
	}
	v, ok := e.item[name]
	return v, ok, nil
}

func (o valueOperand) value(e *env) (types.AttributeValue, bool, error) {
	v, ok := e.values[string(o)]
	if !ok {
		return nil, false, validation("the expression uses %s, which ExpressionAttributeValues does not define", string(o))
	}
	return v, true, nil
}

func (o arithOperand) value(e *env) (types.AttributeValue, bool, error) {
	l, lok, err := o.l.value(e)
	if err != nil {
		return nil, false, err
	}
	r, rok, err := o.r.value(e)
	if err != nil {
		return nil, false, err
	}
	ln, lisN := l.(*types.AttributeValueMemberN)
	rn, risN := r.(*types.AttributeValueMemberN)
	if !lok || !rok || !lisN || !risN {
		return nil, false, validation("an operand of %c is missing or not a number", o.op)
	}
	a, b, err := ints(ln.Value, rn.Value)
	if err != nil {
		return nil, false, err
	}
	if o.op == '-' {
		b = -b
	}
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(a+b, 10)}, true, nil
}

func (o ifNotExistsOperand) value(e *env) (types.AttributeValue, bool, error) {
	v, ok, err := pathOperand(o.path).value(e)
	if err != nil || ok {
		return v, ok, err
	}
	return o.def.value(e)
}

func (o listAppendOperand) value(e *env) (types.AttributeValue, bool, error) {
	l, lok, err := o.l.value(e)
	if err != nil {
		return nil, false, err
	}
	r, rok, err := o.r.value(e)
	if err != nil {
		return nil, false, err
	}
	ll, lisL := l.(*types.AttributeValueMemberL)
	rl, risL := r.(*types.AttributeValueMemberL)
	if !lok || !rok || !lisL || !risL {
		return nil, false, validation("an operand of list_append is missing or not a list")
	}
	out := make([]types.AttributeValue, 0, len(ll.Value)+len(rl.Value))
	return &types.AttributeValueMemberL{Value: append(append(out, ll.Value...), rl.Value...)}, true, nil
}

func (p *parser) operand() (operand, error) {
	t := p.peek()
	switch strings.ToLower(t) {
	case "if_not_exists":
		p.next()
		if err := p.expect("("); err != nil {
			return nil, err
		}
		path, err := p.path()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		def, err := p.operand()
		if err != nil {
			return nil, err
		}
		return ifNotExistsOperand{path, def}, p.expect(")")
	case "list_append":
		p.next()
		if err := p.expect("("); err != nil {
			return nil, err
		}
		l, err := p.operand()
		if err != nil {
			return nil, err
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
		r, err := p.operand()
		if err != nil {
			return nil, err
		}
		return listAppendOperand{l, r}, p.expect(")")
	case "size":
		return nil, p.errorf("ddbstub does not implement size()")
	}
	if strings.HasPrefix(t, ":") {
		p.next()
		p.ph.add(t)
		return valueOperand(t), nil
	}
	path, err := p.path()
	return pathOperand(path), err
}

// ---- Updates ----

type update struct {
	set    []setAction
	remove []string
	add    []addAction
}

type setAction struct {
	path string
	v    operand
}

type addAction struct {
	path string
	v    operand
}

func parseUpdate(src string) (*update, placeholders, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, placeholders{}, err
	}
	u := &update{}
	seen := map[string]bool{}
	for p.pos < len(p.toks) {
		clause := strings.ToUpper(p.next())
		if seen[clause] {
			return nil, placeholders{}, p.errorf("%s appears twice", clause)
		}
		seen[clause] = true
		for {
			path, err := p.path()
			if err != nil {
				return nil, placeholders{}, err
			}
			switch clause {
			case "SET":
				if err := p.expect("="); err != nil {
					return nil, placeholders{}, err
				}
				v, err := p.operand()
				if err != nil {
					return nil, placeholders{}, err
				}
				if op := p.peek(); op == "+" || op == "-" {
					p.next()
					r, err := p.operand()
					if err != nil {
						return nil, placeholders{}, err
					}
					v = arithOperand{op[0], v, r}
				}
				u.set = append(u.set, setAction{path, v})
			case "REMOVE":
				u.remove = append(u.remove, path)
			case "ADD":
				v, err := p.operand()
				if err != nil {
					return nil, placeholders{}, err
				}
				u.add = append(u.add, addAction{path, v})
			default:
				return nil, placeholders{}, p.errorf("ddbstub does not implement the %s clause", clause)
			}
			if p.peek() != "," {
				break
			}
			p.next()
		}
	}
	return u, p.ph, nil
}

// apply returns the item after the update. Every operand reads the item as
// it was before the update, as in DynamoDB.
func (u *update) apply(e *env) (map[string]types.AttributeValue, error) {
	out := maps.Clone(e.item)
	if out == nil {
		out = map[string]types.AttributeValue{}
	}
	for _, a := range u.set {
		name, err := e.attr(a.path)
		if err != nil {
			return nil, err
		}
		v, ok, err := a.v.value(e)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, validation("SET %s: the operand refers to an attribute that does not exist", a.path)
		}
		out[name] = v
	}
	for _, path := range u.remove {
		name, err := e.attr(path)
		if err != nil {
			return nil, err
		}
		delete(out, name)
	}
	for _, a := range u.add {
		name, err := e.attr(a.path)
		if err != nil {
			return nil, err
		}
		v, _, err := a.v.value(e)
		if err != nil {
			return nil, err
		}
		old, exists := e.item[name]
		if !exists {
			out[name] = v
			continue
		}
		on, oisN := old.(*types.AttributeValueMemberN)
		vn, visN := v.(*types.AttributeValueMemberN)
		if !oisN || !visN {
			return nil, validation("ADD %s: ddbstub adds only numbers", a.path)
		}
		x, y, err := ints(on.Value, vn.Value)
		if err != nil {
			return nil, err
		}
		out[name] = &types.AttributeValueMemberN{Value: strconv.FormatInt(x+y, 10)}
	}
	return out, nil
}

// ---- Values ----

func ints(a, b string) (int64, int64, error) {
	x, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, validation("ddbstub does arithmetic on integers only, not %q", a)
	}
	y, err := strconv.ParseInt(b, 10, 64)
	if err != nil {
		return 0, 0, validation("ddbstub does arithmetic on integers only, not %q", b)
	}
	return x, y, nil
}

func equal(a, b types.AttributeValue) bool {
	if n, ok := compare(a, b); ok {
		return n == 0
	}
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.DeepEqual(a, b)
}

// compare orders two strings, numbers or binaries. It reports false for
// other types or mixed types, which DynamoDB never finds equal or ordered.
func compare(a, b types.AttributeValue) (int, bool) {
	switch x := a.(type) {
	case *types.AttributeValueMemberS:
		if y, ok := b.(*types.AttributeValueMemberS); ok {
			return strings.Compare(x.Value, y.Value), true
		}
	case *types.AttributeValueMemberB:
		if y, ok := b.(*types.AttributeValueMemberB); ok {
			return bytes.Compare(x.Value, y.Value), true
		}
	case *types.AttributeValueMemberN:
		if y, ok := b.(*types.AttributeValueMemberN); ok {
			return compareNumbers(x.Value, y.Value), true
		}
	}
	return 0, false
}

func compareNumbers(a, b string) int {
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	x, _ := strconv.ParseFloat(a, 64)
	y, _ := strconv.ParseFloat(b, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
