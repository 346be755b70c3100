// MathJax 3 configuration for pymdownx.arithmatex (generic mode), which wraps inline math in
// \( \) and display math in \[ \] inside elements of class "arithmatex". MathJax typesets the
// page once when it loads; the theme's instant navigation is off, so every page is a full load.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
