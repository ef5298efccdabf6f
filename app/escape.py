"""Text a user chose (run names, notes, tags, prompts, settings of a config) shown as the text it is.

gr.Markdown renders Markdown and the HTML its sanitiser lets through, gr.HTML renders HTML, gr.Error's
message is HTML in the page's toast, and Plotly renders a few tags (links among them) in titles and
legends. So a run named `![t](http://host/pixel.png) <a href="http://host/login">Log in again</a>`
would make every visitor's browser fetch that image and show that link. Each such text goes through
the function for where it is shown; what is written here around it (bold, tables) stays Markdown.
"""
from __future__ import annotations

import html
import re

# The characters Markdown (with GitHub's tables and bare-URL links) and KaTeX give a meaning to.
# CommonMark lets every ASCII punctuation character be backslash-escaped, and an escaped one is the
# character itself: no link, image, emphasis, tag, entity, table cell or bare-URL link can form
# ("http\://" and "www\." are no URL, "a\@b" no address).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:@$=^])")


def markdown(text) -> str:
    """For gr.Markdown: Markdown's characters escaped, line breaks as spaces (a line break could
    start a heading, a list or a code block)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def html_text(text) -> str:
    """For the content of gr.HTML and for a gr.Error's message (the API's clients read that message
    too, so quotes stay as they are; an attribute's value needs html.escape's quote=True)."""
    return html.escape(str(text), quote=False)


def plot(text) -> str:
    """For a Plotly title, legend or hover label: &, < and > as entities, which Plotly shows as the
    characters (it knows no &quot;, so quotes stay as they are)."""
    return html.escape(str(text), quote=False)
