package config

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// locate gives each error the line of the file where its key is written
// (for a missing key, where its section is), and, for a key inside a
// route or trigger, that item's name: "routes[1]" alone sends a person
// counting list items. koanf's parse keeps no positions, so the file is
// read a second time into yaml.v3's node tree, which does.
func locate(errs []*Error, src []byte, file string) {
	var root yaml.Node
	if yaml.Unmarshal(src, &root) != nil || len(root.Content) == 0 {
		return
	}
	doc := root.Content[0]
	for _, e := range errs {
		if file != "" {
			if line := lineOf(doc, e.Key); line > 0 {
				e.File, e.Line = file, line
			}
		}
		e.Item = itemName(doc, e.Key)
	}
}

// segments splits routes[1].when.keywords[0] into routes, [1], when,
// keywords, [0].
func segments(key string) []string {
	var out []string
	for _, part := range strings.Split(key, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			switch {
			case i < 0:
				out, part = append(out, part), ""
			case i > 0:
				out, part = append(out, part[:i]), part[i:]
			default:
				j := strings.IndexByte(part, ']')
				if j < 0 {
					return append(out, part)
				}
				out, part = append(out, part[:j+1]), part[j+1:]
			}
		}
	}
	return out
}

// lineOf is the line of the deepest node on key's path: the key itself
// when it is written, else the section it is missing from.
func lineOf(n *yaml.Node, key string) int {
	line := 0
	for _, seg := range segments(key) {
		child, at := step(n, seg)
		if child == nil {
			break
		}
		line, n = at, child
	}
	return line
}

// step goes from n to its child seg, returning the child and the line
// where it is written (a mapping key's own line).
func step(n *yaml.Node, seg string) (*yaml.Node, int) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if strings.HasPrefix(seg, "[") {
		i, err := strconv.Atoi(strings.Trim(seg, "[]"))
		if err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
			return nil, 0
		}
		return n.Content[i], n.Content[i].Line
	}
	if n.Kind != yaml.MappingNode {
		return nil, 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == seg {
			return n.Content[i+1], n.Content[i].Line
		}
	}
	return nil, 0
}

// itemName is the name of the route or trigger a key is inside
// (`route "billing"`), "" otherwise.
func itemName(doc *yaml.Node, key string) string {
	segs := segments(key)
	if len(segs) < 2 || (segs[0] != "routes" && segs[0] != "triggers") || !strings.HasPrefix(segs[1], "[") ||
		(len(segs) == 3 && segs[2] == "name") {
		return "" // a key outside a list item, or the name itself in question
	}
	list, _ := step(doc, segs[0])
	if list == nil {
		return ""
	}
	item, _ := step(list, segs[1])
	if item == nil {
		return ""
	}
	name, _ := step(item, "name")
	if name == nil || name.Kind != yaml.ScalarNode || name.Value == "" {
		return ""
	}
	return strings.TrimSuffix(segs[0], "s") + " " + strconv.Quote(name.Value)
}
