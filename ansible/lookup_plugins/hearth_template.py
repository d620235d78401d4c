"""``lookup('hearth_template', path, template_vars={...})``: the stock template lookup
without its deep copy of every variable.

ansible-core 2.19's ``template`` lookup starts with ``deepcopy(variables)``: every
call copies all variables of the host, extravars included. Hearth's extravars
hold every appliance of a run, so each render cost O(appliances) and a run
O(appliances^2) (measured: the domain-files task of one host took 3.9 s instead
of 0.55 s with 25 appliances in the run). The template only reads variables
and the lookup only adds keys, so a shallow copy is enough. Everything else is
the stock lookup's behaviour, options included.
"""

from __future__ import annotations

import os

from ansible._internal._templating import _template_vars
from ansible._internal._templating._engine import TemplateOptions, TemplateOverrides
from ansible.errors import AnsibleError
from ansible.plugins.lookup.template import DOCUMENTATION as _STOCK_DOCUMENTATION
from ansible.plugins.lookup.template import LookupModule as _StockTemplateLookup
from ansible.template import trust_as_template

DOCUMENTATION = _STOCK_DOCUMENTATION.replace("name: template", "name: hearth_template", 1)


class LookupModule(_StockTemplateLookup):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        overrides = TemplateOverrides.from_kwargs({
            name: self.get_option(name)
            for name in ("variable_start_string", "variable_end_string",
                         "comment_start_string", "comment_end_string", "trim_blocks")
        })
        ret = []
        for term in terms:
            lookupfile = self.find_file_in_search_path(variables, "templates", term)
            if not lookupfile:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            template_data = trust_as_template(self._loader.get_text_file_contents(lookupfile))
            searchpath = []
            for path in variables.get("ansible_search_path", []):
                searchpath += [os.path.join(path, "templates"), path]
            searchpath.insert(0, os.path.dirname(lookupfile))
            template_vars = dict(variables)  # shallow: the point of this plugin
            template_vars.update(_template_vars.generate_ansible_template_vars(
                path=term, fullpath=lookupfile,
                include_ansible_managed="ansible_managed" not in template_vars,
            ))
            template_vars.update(self.get_option("template_vars"))
            templar = self._templar.copy_with_new_env(available_variables=template_vars,
                                                      searchpath=searchpath)
            ret.append(templar._engine.template(template_data, options=TemplateOptions(
                escape_backslashes=False, overrides=overrides)))
        return ret
