"""The paper's kit beside the plugin core: its networks (`models`), offline datasets
(`datasets`) and the report on finished runs (`report`). Import the module you need, e.g.
`from lth_keras.paper import models`; the core (`import lth_keras`) never imports these.
"""
