"""Packaging for semicontrast: everything is read from settings.ini (nbdev 2 convention)."""
from configparser import ConfigParser
import setuptools, shlex

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'License :: OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = '3.10 3.11 3.12 3.13'.split()
lic = licenses[cfg['license'].lower()]
min_python = cfg['min_python']

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
notebook_requirements = shlex.split(cfg.get('notebook_requirements', ''))
scripts = [o.strip() for o in cfg.get('console_scripts', '').split('\n') if o.strip()]

setuptools.setup(
    name=cfg['lib_name'],
    license=lic[0] + ' (code); CC-BY-SA-4.0 (the embedded MSD hippocampus data, semicontrast/embedded/hippocampus/LICENSE.md)',
    license_files=['LICENSE', 'semicontrast/embedded/hippocampus/LICENSE.md'],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title(),
                 'Topic :: Scientific/Engineering :: Medical Science Apps.',
                 lic[1]] + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]],
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=['semicontrast', 'semicontrast.*']),
    package_data={'semicontrast': ['embedded/hippocampus/*.json', 'embedded/hippocampus/*.md',
                                   'embedded/hippocampus/imagesTr/*.nii.gz', 'embedded/hippocampus/labelsTr/*.nii.gz',
                                   'presets/*.json']},
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'notebooks': notebook_requirements, 'tensorboard': ['tensorboard>=2.16'], 'onnx': ['onnx', 'onnxscript', 'onnxruntime']},
    python_requires='>=' + min_python,
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    version=cfg['version'], description=cfg['description'], keywords=cfg['keywords'],
    author=cfg['author'], author_email=cfg['author_email'],
)
