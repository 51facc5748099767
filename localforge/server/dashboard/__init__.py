"""The dashboard at /ui: a page of plain HTML, CSS and JS over a small JSON API under /ui/api."""
