"""``lookup('hearth_template', path, template_vars={...})``: the stock template lookup
without its deep copy of every variable.

ansible-core 2.19's ``template`` lookup starts with ``deepcopy(variables)``: every
call copies all variables of the host, extravars included. Hearth's extravars
hold every appliance of a run, so each render cost O(appliances) and a run
O(appliances^2) (measured: the domain-files task of one host took 3.9 s instead
of 0.55 s with 25 appliances in the run). The template only reads variables
and the lookup only adds keys to its copy, so a shallow copy is enough.

Contract: this is the stock lookup itself (options, search path, trust,
``template_vars``), called with the variables in a dict whose ``deepcopy`` is
a shallow copy. No private ansible-core API is used, so a later ansible-core
keeps working; if its lookup stops deep-copying, nothing changes here.
``tests/ansible/test_template_lookup.py`` checks that no variable's value is
copied and that the output equals the stock lookup's.
"""

from __future__ import annotations

from ansible.plugins.lookup.template import LookupModule as _StockTemplateLookup

# A literal, not derived from the stock lookup's: ansible-doc and the plugin
# loader read it without importing the file. The stock options this lookup
# honours; jinja2_native and convert_data (deprecated, unused) are left out.
DOCUMENTATION = """
    name: hearth_template
    author: Hearth
    short_description: retrieve contents of file after templating with Jinja2, without copying every variable
    description:
      - The stock M(ansible.builtin.template) lookup (same options, search path and trust rules)
        without its deep copy of every host variable on each call (with Hearth's extravars, a
        cost per render that grew with the number of appliances in the run).
      - Returns a list of strings, one per template, each the result of rendering it.
    options:
      _terms:
        description: list of files to template
      variable_start_string:
        description: The string marking the beginning of a print statement.
        default: '{{'
        type: str
      variable_end_string:
        description: The string marking the end of a print statement.
        default: '}}'
        type: str
      template_vars:
        description: A dictionary, the keys become additional variables available for templating.
        default: {}
        type: dict
      comment_start_string:
        description: The string marking the beginning of a comment statement.
        type: str
        default: '{#'
      comment_end_string:
        description: The string marking the end of a comment statement.
        type: str
        default: '#}'
      trim_blocks:
        description:
          - Determine when newlines should be removed from blocks.
          - When set to V(yes) the first newline after a block is removed (block, not variable tag!).
        type: bool
        default: yes
"""

EXAMPLES = """
- name: Render a zone file with one extra variable
  ansible.builtin.debug:
    msg: "{{ lookup('hearth_template', 'zone.db.j2', template_vars={'zone': zone}) }}"
"""

RETURN = """
_raw:
  description: file(s) content after templating
  type: list
  elements: raw
"""


class _ShallowOnDeepcopy(dict):
    """The host's variables, for a lookup that deep-copies them: copied one level only."""

    def __deepcopy__(self, memo: dict) -> dict:
        return dict(self)


class LookupModule(_StockTemplateLookup):

    def run(self, terms, variables=None, **kwargs):
        return super().run(terms, variables=_ShallowOnDeepcopy(variables or {}), **kwargs)
