"""yyai: the Django app that serves groups of Keras models (see yyai.runtime)."""
