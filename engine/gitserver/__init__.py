"""Git over smart HTTP: Hearth authenticates, then ``git http-backend`` speaks git.

``backend`` is the CGI bridge (streams both ways, never holds a pack in
memory); ``policy`` decides what a request is (read or push) and how a push to
``main`` is treated; ``hook`` is the pre-receive hook git runs during a push,
which enforces that decision on the ref updates themselves.
"""
